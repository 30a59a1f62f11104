"""Function logs: the runtime's output split into lines, Lambda's START/END/REPORT lines, bounded buffers.

Every line goes to the emulator's log sink (stdout by default) and to the buffer of the invocation it belongs to,
which ``LogType: Tail`` and the test fixtures read. Memory stays bounded whatever a runtime writes.
"""

from __future__ import annotations

import math
import sys
import threading
from collections import deque
from collections.abc import Callable
from datetime import UTC, datetime
from typing import TextIO

MAX_LINE_BYTES = 256 * 1024  # a longer line without a newline is cut into pieces of this size
TAIL_BYTES = 4096  # what X-Amz-Log-Result carries
INVOCATION_LOG_BYTES = 1024 * 1024  # what an invocation keeps of its own log (the newest lines)

LogSink = Callable[[str, str, str], None]  # (function name, environment id, line)


class LineSplitter:
    """Bytes in, complete lines out; a partial line is kept (bounded) until its newline or a ``flush``."""

    def __init__(self, emit: Callable[[str], None]):
        self._emit = emit
        self._partial = bytearray()

    def feed(self, data: bytes) -> None:
        start = 0
        while True:
            end = data.find(b"\n", start)
            if end < 0:
                break
            if self._partial:
                self._partial += data[start:end]
                line = bytes(self._partial)
                self._partial.clear()
            else:
                line = data[start:end]
            self._emit_bytes(line)
            start = end + 1
        if start < len(data):
            self._partial += data[start:]
            while len(self._partial) >= MAX_LINE_BYTES:
                self._emit_bytes(bytes(self._partial[:MAX_LINE_BYTES]))
                del self._partial[:MAX_LINE_BYTES]

    def flush(self) -> None:
        if self._partial:
            line = bytes(self._partial)
            self._partial.clear()
            self._emit_bytes(line)

    def close(self) -> None:
        """The last partial line out; then nothing more is emitted (the callback, often a bound method of the
        splitter's owner, is let go)."""
        self.flush()
        self._emit = _discard

    def _emit_bytes(self, line: bytes) -> None:
        if line.endswith(b"\r"):
            line = line[:-1]
        self._emit(line.decode("utf-8", "replace"))


def _discard(_: str) -> None:
    pass


class InvocationLog:
    """The newest lines of one invocation, at most ``INVOCATION_LOG_BYTES``."""

    __slots__ = ("_bytes", "_lines", "truncated")

    def __init__(self) -> None:
        self._lines: deque[str] = deque()
        self._bytes = 0
        self.truncated = False

    def append(self, line: str) -> None:
        self._lines.append(line)
        self._bytes += len(line) + 1
        while self._bytes > INVOCATION_LOG_BYTES and len(self._lines) > 1:
            self._bytes -= len(self._lines.popleft()) + 1
            self.truncated = True

    @property
    def text(self) -> str:
        return "".join(line + "\n" for line in self._lines)

    def tail(self, limit: int = TAIL_BYTES) -> bytes:
        """The last ``limit`` bytes, as Lambda's ``X-Amz-Log-Result`` holds them."""
        out: list[bytes] = []
        size = 0
        for line in reversed(self._lines):
            encoded = line.encode() + b"\n"
            out.append(encoded)
            size += len(encoded)
            if size >= limit:
                break
        return b"".join(reversed(out))[-limit:]


def iso_now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


def start_line(request_id: str, version: str = "$LATEST") -> str:
    return f"START RequestId: {request_id} Version: {version}"


def end_line(request_id: str) -> str:
    return f"END RequestId: {request_id}"


def report_line(
    request_id: str,
    *,
    duration_ms: float,
    memory_mb: int,
    max_memory_used_mb: int,
    init_duration_ms: float | None = None,
    status: str | None = None,
    error_type: str | None = None,
) -> str:
    parts = [
        f"REPORT RequestId: {request_id}",
        f"Duration: {duration_ms:.2f} ms",
        f"Billed Duration: {max(1, math.ceil(duration_ms))} ms",
        f"Memory Size: {memory_mb} MB",
        f"Max Memory Used: {max_memory_used_mb} MB",
    ]
    if init_duration_ms is not None:
        parts.append(f"Init Duration: {init_duration_ms:.2f} ms")
    if status is not None:
        parts.append(f"Status: {status}")
    if error_type is not None:
        parts.append(f"Error Type: {error_type}")
    return "\t".join(parts)


def readable(record: str) -> str:
    """A log record as a person reads it: its lines (joined by \r in CloudWatch's one-record shape) on lines."""
    return record.replace("\r\n", "\n").replace("\r", "\n") if "\r" in record else record


class StreamSink:
    """Writes function logs to a text stream, prefixed with the function name when several are served."""

    def __init__(self, stream: TextIO | None = None, *, prefix: bool = False):
        self._stream = stream
        self.prefix = prefix
        self._lock = threading.Lock()

    def __call__(self, function: str, env_id: str, line: str) -> None:
        stream = self._stream or sys.stdout
        # A runtime sends a multi-line record (a traceback) as one line with \r between its lines, so CloudWatch
        # keeps it as one record; a terminal would print each over the last, so they become lines again here.
        line = readable(line)
        text = f"{function} | {line}\n" if self.prefix else f"{line}\n"
        with self._lock:
            stream.write(text)
            stream.flush()

"""One invocation: its event, its outcome (what the caller gets, whole or streamed) and its log, from arrival to
REPORT."""

from __future__ import annotations

import asyncio
import base64
import json
import os
import random
import time
from collections import deque
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field

from runtime_api import StreamEnd

from .leaks import Leak
from .logs import InvocationLog


@dataclass(frozen=True, slots=True)
class Outcome:
    """What the caller is answered: the response payload, or an error body with its Lambda error type."""

    payload: bytes
    error_type: str | None = None
    content_type: str = "application/json"
    stream: ResponseStream | None = None  # a response the runtime streams to an InvokeWithResponseStream caller

    @property
    def ok(self) -> bool:
        return self.error_type is None

    @classmethod
    def error(cls, error_type: str, message: str, *, request_id: str | None = None) -> Outcome:
        text = f"RequestId: {request_id} Error: {message}" if request_id else message
        return cls(json.dumps({"errorType": error_type, "errorMessage": text}).encode(), error_type)

    @classmethod
    def from_runtime_error(cls, body: bytes, header_type: str | None) -> Outcome:
        """A runtime's ``/error`` or ``/init/error`` body; the real clients put the type in the body, not the header."""
        try:
            parsed = json.loads(body)
        except ValueError:
            parsed = None
        if isinstance(parsed, dict):
            error_type = str(parsed.get("errorType") or header_type or "Unhandled")
            return cls(body, error_type)
        error_type = header_type or "Unhandled"
        message = body.decode("utf-8", "replace")
        return cls(json.dumps({"errorType": error_type, "errorMessage": message}).encode(), error_type)

    @property
    def message(self) -> str:
        try:
            return str(json.loads(self.payload).get("errorMessage", ""))
        except (ValueError, AttributeError):
            return ""


class ResponseStream:
    """A response the runtime streams (``Lambda-Runtime-Function-Response-Mode: streaming``); implements
    ``runtime_api.ResponseSink``.

    The runtime's ``/response`` handler writes the body into it and closes it; the environment ends it first
    when the invocation fails (timeout, crash, shutdown). ``ended`` then holds None (complete) or the error
    Outcome. With ``forward`` (the caller used InvokeWithResponseStream) the caller reads the chunks as they come
    and at most ``QUEUE_BYTES`` wait for it: beyond that ``write`` waits, holding the runtime back as a slow
    client does on Lambda. Without, the body is kept whole for a buffered caller (``body()``).
    """

    QUEUE_BYTES = 1024 * 1024

    def __init__(
        self,
        limit_bytes: int,
        content_type: str,
        *,
        forward: bool,
        on_end: Callable[[Outcome | None], None] | None = None,
    ):
        self.limit_bytes = limit_bytes
        self.content_type = content_type
        self.forward = forward
        self.size_bytes = 0
        self.ended: asyncio.Future[Outcome | None] = asyncio.get_running_loop().create_future()
        self._on_end = on_end
        self._chunks: deque[bytes] = deque()
        self._queued_bytes = 0
        self._readable = asyncio.Event()
        self._drained = asyncio.Event()
        self._abandoned = False

    # runtime side -------------------------------------------------------------------------------------------
    async def write(self, chunk: bytes) -> bool:
        if self.ended.done():
            return True  # ended first by the environment: what the runtime still sends is dropped
        room = self.limit_bytes - self.size_bytes
        if len(chunk) > room:
            self._put(chunk[:room])
            self.end(
                Outcome.error(
                    "Function.ResponseSizeTooLarge",
                    f"Response payload size exceeded maximum allowed payload size ({self.limit_bytes} bytes).",
                )
            )
            return False
        self._put(chunk)
        while self.forward and self._queued_bytes > self.QUEUE_BYTES and not self.ended.done():
            self._drained.clear()
            await self._drained.wait()
        return True

    def close(self, error_type: str | None, error_body: bytes | None) -> None:
        if error_type is None and error_body is None:
            self.end(None)
        else:
            self.end(Outcome.from_runtime_error(error_body or b"", error_type))

    def truncated(self, reason: str) -> None:
        self.end(Outcome.error("Runtime.TruncatedResponse", f"the streamed response broke off: {reason}"))

    def end(self, error: Outcome | None) -> None:
        """No more chunks; None when the response is complete, else the error it ends with. Idempotent."""
        if self.ended.done():
            return
        self.ended.set_result(error)
        self._readable.set()
        self._drained.set()
        if self._on_end is not None:
            self._on_end(error)

    def _put(self, chunk: bytes) -> None:
        self.size_bytes += len(chunk)
        if chunk and not self._abandoned:
            self._chunks.append(chunk)
            self._queued_bytes += len(chunk)
            self._readable.set()

    # caller side --------------------------------------------------------------------------------------------
    async def chunks(self) -> AsyncIterator[bytes]:
        """Each chunk as it arrives, until the stream has ended and every chunk was read."""
        while True:
            if self._chunks:
                chunk = self._chunks.popleft()
                self._queued_bytes -= len(chunk)
                self._drained.set()
                yield chunk
            elif self.ended.done() or self._abandoned:
                return
            else:
                self._readable.clear()
                await self._readable.wait()

    def body(self) -> bytes:
        """The whole response, for a buffered caller (read once the stream has ended)."""
        return b"".join(self._chunks)

    def abandon(self) -> None:
        """The caller went away: what is queued and what the runtime still writes is dropped."""
        self._abandoned = True
        self._chunks.clear()
        self._queued_bytes = 0
        self._drained.set()


class CallerStream:
    """An invocation's answer as InvokeWithResponseStream delivers it (``runtime_api.ResponseChunks``): the
    runtime's stream as it arrives, or a buffered response as one chunk; then how it ended, and the log tail.

    ``on_end`` is told the final outcome once, whether or not the caller reads to the end.
    """

    def __init__(self, invocation: Invocation, outcome: Outcome, *, log_tail: bool, on_end: Callable[[Outcome], None]):
        self._invocation = invocation
        self._outcome = outcome
        self._log_tail = log_tail
        stream = outcome.stream
        if stream is None:
            on_end(outcome)
        else:
            stream.ended.add_done_callback(lambda ended: on_end(ended.result() or outcome))

    async def __aiter__(self) -> AsyncIterator[bytes]:
        stream = self._outcome.stream
        if stream is not None:
            async for chunk in stream.chunks():
                yield chunk
        elif self._outcome.ok and self._outcome.payload:
            yield self._outcome.payload

    async def end(self) -> StreamEnd:
        stream = self._outcome.stream
        error = await asyncio.shield(stream.ended) if stream is not None else self._outcome
        tail = None
        if self._log_tail:
            # The tail ends with END and REPORT, written once the runtime is back in `next` (or timed out).
            await asyncio.shield(self._invocation.finished)
            tail = self._invocation.log.tail()
        if error is None or error.ok:
            return StreamEnd(log_tail=tail)
        return StreamEnd(error.error_type, error.payload.decode("utf-8", "replace"), tail)

    def abandon(self) -> None:
        if self._outcome.stream is not None:
            self._outcome.stream.abandon()


# Ids need to be unique, not secret: a generator of the module's own (seeded from os.urandom; a test that seeds the
# global one, as pytest-randomly does, cannot make them repeat; reseeded in a forked child) makes them without a
# system call each, in a quarter of uuid4's time, on every invocation's path.
_ids = random.Random()
os.register_at_fork(after_in_child=_ids.seed)
_random_bits = _ids.getrandbits
_UUID4_CLEAR = ~((0xF000 << 64) | (0xC000 << 48))
_UUID4_SET = (0x4000 << 64) | (0x8000 << 48)  # version 4, RFC 4122 variant


def new_request_id() -> str:
    """A random (version 4) UUID as text, as Lambda's request ids are."""
    h = "%032x" % (_random_bits(128) & _UUID4_CLEAR | _UUID4_SET)
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"


def new_trace_id() -> str:
    return f"Root=1-{int(time.time()):08x}-{_random_bits(96):024x};Parent={_random_bits(64):016x};Sampled=0"


def decode_client_context(value: str | None) -> str | None:
    """X-Amz-Client-Context is base64 JSON; the runtime receives the JSON text itself."""
    if value is None:
        return None
    return base64.b64decode(value).decode("utf-8", "replace")


@dataclass(eq=False)
class Invocation:
    payload: bytes
    function_arn: str
    client_context: str | None = None
    request_id: str = field(default_factory=new_request_id)
    trace_id: str = field(default_factory=new_trace_id)
    received_s: float = field(default_factory=time.monotonic)
    log: InvocationLog = field(default_factory=InvocationLog)
    # Set by the environment that runs it:
    env_id: str | None = None
    started_s: float | None = None  # START (event handed over, or INIT begun for a retried INIT)
    deadline_s: float | None = None  # monotonic
    deadline_ms: int = 0  # epoch, for Lambda-Runtime-Deadline-Ms
    cold_start: bool = False
    status: str | None = None  # REPORT's Status: timeout | error
    leaks: list[Leak] = field(default_factory=list)
    streaming_invoke: bool = False  # the caller reads a response stream (InvokeWithResponseStream)
    stream: ResponseStream | None = None  # the runtime is streaming its response (set by the environment)
    result: asyncio.Future[Outcome] = field(init=False)
    finished: asyncio.Future[None] = field(init=False)  # END and REPORT written

    def __post_init__(self) -> None:
        loop = asyncio.get_running_loop()
        self.result = loop.create_future()
        self.finished = loop.create_future()

    def start(self, timeout_s: float) -> None:
        now = time.monotonic()
        self.started_s = now
        self.deadline_s = now + timeout_s
        self.deadline_ms = int((time.time() + timeout_s) * 1000)

    def abandon(self, outcome: Outcome) -> None:
        """Answer an invocation that will never run (the emulator is shutting down)."""
        self.resolve(outcome)
        if not self.finished.done():
            self.finished.set_result(None)

    def resolve(self, outcome: Outcome) -> bool:
        if self.stream is not None and not outcome.ok:
            self.stream.end(outcome)  # the invocation failed mid-stream (timeout, crash): the stream ends with it
        if self.result.done():
            return False
        self.result.set_result(outcome)
        return True

"""What the fuzz and OpenAPI tests share: ``lambda-freeze serve`` as a process of its own (so that its memory and
its survival can be judged from outside), raw HTTP over sockets, and the error shapes the two APIs answer with."""

from __future__ import annotations

import http.client
import json
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from conftest import FUNCTIONS

FUZZ_FUNCTION = FUNCTIONS / "python" / "fuzz"
EXAMPLES_VARIABLE = "LAMBDA_FREEZE_FUZZ_EXAMPLES"
_REPORT = re.compile(r"^REPORT RequestId: (\S+)")

# Requests sent, per API and transport, and the statuses answered, over the whole test run: the tests print them.
SENT: Counter[str] = Counter()
ANSWERED: Counter[str] = Counter()


def examples(default: int) -> int:
    """Examples per property: ``default``, or the number in LAMBDA_FREEZE_FUZZ_EXAMPLES for a longer run."""
    value = os.environ.get(EXAMPLES_VARIABLE, "").strip()
    return int(value) if value else default


def serve_command() -> list[str]:
    script = Path(sys.executable).parent / "lambda-freeze"
    return [str(script)] if script.exists() else [sys.executable, "-m", "emulator.cli"]


class ServeProcess:
    """``lambda-freeze serve`` of one function, with its log (stderr) and its functions' output (stdout) read as
    they come: ``wait_reports`` awaits the REPORT line of invocations, ``errors`` are the emulator's ERROR lines."""

    def __init__(
        self,
        code_dir: Path = FUZZ_FUNCTION,
        *args: str,
        name: str = "fn",
        timeout_s: float = 3.0,
        env: dict[str, str] | None = None,
    ):
        self.name = name
        self.proc = subprocess.Popen(
            [
                *serve_command(),
                "serve",
                "--port",
                "0",
                "--code-dir",
                str(code_dir),
                "--handler",
                "app.handler",
                "--name",
                name,
                "--timeout",
                str(timeout_s),
                *args,
            ],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            stdin=subprocess.DEVNULL,
            env={**os.environ, **(env or {})},
        )
        self.log: list[str] = []
        self.reports: set[str] = set()
        self._changed = threading.Condition()
        self._url: str | None = None
        self._readers = [
            threading.Thread(target=self._read_log, daemon=True),
            threading.Thread(target=self._read_output, daemon=True),
        ]
        for reader in self._readers:
            reader.start()
        with self._changed:
            if not self._changed.wait_for(lambda: self._url is not None or self.proc.poll() is not None, 60):
                self.stop()
                raise AssertionError("lambda-freeze serve did not say it was serving within 60 s")
        if self._url is None:
            raise AssertionError("lambda-freeze serve exited early:\n" + "".join(self.log))
        self.url = self._url
        self.port = int(self.url.rsplit(":", 1)[1])

    def _read_log(self) -> None:
        assert self.proc.stderr is not None
        for raw in self.proc.stderr:
            line = raw.decode("utf-8", "replace")
            with self._changed:
                self.log.append(line)
                if self._url is None and "serving" in line and " on " in line:
                    self._url = line.split(" on ")[1].split()[0]
                self._changed.notify_all()
        with self._changed:
            self._changed.notify_all()

    def _read_output(self) -> None:
        assert self.proc.stdout is not None
        for raw in self.proc.stdout:
            match = _REPORT.match(raw.decode("utf-8", "replace"))
            if match:
                with self._changed:
                    self.reports.add(match.group(1))
                    self._changed.notify_all()

    @property
    def pid(self) -> int:
        return self.proc.pid

    def alive(self) -> bool:
        return self.proc.poll() is None

    def rss_kb(self) -> int:
        """The emulator process's resident set (VmRSS), in kB."""
        for line in Path(f"/proc/{self.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
        raise AssertionError(f"no VmRSS in /proc/{self.pid}/status")

    def wait_reports(self, request_ids: Iterable[str], timeout_s: float) -> set[str]:
        """Await the REPORT line of every invocation named; the ids still without one when the time is up."""
        wanted = set(request_ids)
        with self._changed:
            self._changed.wait_for(lambda: wanted <= self.reports or not self.alive(), timeout_s)
            return wanted - self.reports

    def errors(self) -> list[str]:
        """The emulator's own ERROR lines (a traceback follows each in the log)."""
        with self._changed:
            return [line for line in self.log if line.startswith("lambda-freeze ERROR")]

    def environments(self) -> list[dict[str, Any]]:
        status, _, body = http_call(self.port, "GET", "/_lambda-freeze/environments")
        assert status == 200, body
        return list(json.loads(body))

    def stop(self) -> None:
        if self.alive():
            self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        for reader in self._readers:
            reader.join(timeout=10)
        for pipe in (self.proc.stdout, self.proc.stderr):
            if pipe is not None:
                pipe.close()


def http_call(
    port: int,
    method: str,
    path: str,
    body: bytes | None = None,
    headers: dict[str, str] | None = None,
    *,
    timeout_s: float = 30.0,
    counter: str | None = None,
) -> tuple[int, http.client.HTTPMessage, bytes]:
    """One request through ``http.client``, a real HTTP client; the connection is closed afterwards."""
    if counter is not None:
        SENT[counter] += 1
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout_s)
    try:
        conn.request(method, path, body=body, headers=headers or {})
        response = conn.getresponse()
        if counter is not None:
            ANSWERED[f"{counter.split('/')[0]} {response.status}"] += 1
        return response.status, response.msg, response.read()
    finally:
        conn.close()


@dataclass
class RawReply:
    status: int
    headers: http.client.HTTPMessage
    body: bytes
    version: str  # of the status line, as the server wrote it


class _AnyVersionResponse(http.client.HTTPResponse):
    """Reads a status line of any HTTP version (a server may echo a request's "HTTP/2.0" in an HTTP/1 answer),
    keeping the version it said."""

    said_version = ""

    def _read_status(self) -> tuple[str, int, str]:
        version, status, reason = super()._read_status()  # type: ignore[misc]
        self.said_version = version
        return ("HTTP/1.1" if version.startswith("HTTP/") and version != "HTTP/1.0" else version), status, reason


@dataclass
class RawExchange:
    """What came back on one connection: the responses, in order, and whether the server then closed it."""

    replies: list[RawReply] = field(default_factory=list)
    closed: bool = False
    elapsed_s: float = 0.0


class _SharedFile:
    """``http.client.HTTPResponse`` reads from ``sock.makefile()`` and closes it after the body: one buffered file
    for every response on the connection, never closed by them, so that bytes read ahead are there for the next."""

    def __init__(self, stream: Any):
        self._stream = stream

    def makefile(self, mode: str) -> Any:
        return self

    def __getattr__(self, name: str) -> Any:
        return getattr(self._stream, name)

    def close(self) -> None:
        pass


def raw_exchange(
    port: int, data: bytes, *, half_close: bool, timeout_s: float = 10.0, counter: str | None = None
) -> RawExchange:
    """Send ``data`` as it is on a new connection (then shut the sending side with ``half_close``) and read every
    response until the server closes the connection. A silence of ``timeout_s`` is a failure: the server hung."""
    if counter is not None:
        SENT[counter] += 1
    started = time.monotonic()
    exchange = RawExchange()
    with socket.create_connection(("127.0.0.1", port), timeout=timeout_s) as sock:
        try:
            sock.sendall(data)
            if half_close:
                sock.shutdown(socket.SHUT_WR)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the server answered and closed before taking everything: read what it said

        def finish_sending() -> None:
            if not half_close:
                try:
                    sock.shutdown(socket.SHUT_WR)
                except OSError:
                    pass  # the server closed it already

        with sock.makefile("rb") as stream:
            _read_replies(_SharedFile(stream), exchange, data, timeout_s, counter, finish_sending)
    exchange.elapsed_s = time.monotonic() - started
    return exchange


def _read_replies(
    shared: _SharedFile,
    exchange: RawExchange,
    data: bytes,
    timeout_s: float,
    counter: str | None,
    finish_sending: Callable[[], None],
) -> None:
    while True:
        response = _AnyVersionResponse(shared)  # type: ignore[arg-type]
        try:
            response.begin()
        except (http.client.RemoteDisconnected, ConnectionResetError):
            exchange.closed = True
            return
        except TimeoutError:
            raise AssertionError(f"no response and no close within {timeout_s} s for {data[:300]!r}") from None
        try:
            body = response.read()
        except (http.client.IncompleteRead, ConnectionResetError) as exc:
            raise AssertionError(f"a response broke off ({exc!r}) for {data[:300]!r}") from None
        exchange.replies.append(RawReply(response.status, response.msg, body, response.said_version))
        if counter is not None:
            ANSWERED[f"{counter.split('/')[0]} {response.status}"] += 1
        if response.will_close:
            exchange.closed = True
            return
        # The server keeps the connection (it may read a request's Connection headers otherwise than the client
        # meant): the client has nothing more to send, and says so; the server then closes.
        finish_sending()


# ------------------------------------------------------------------------------------------------ error shapes
def assert_aws_error(status: int, headers: http.client.HTTPMessage, body: bytes) -> str:
    """An Invoke API error as AWS sends it: ``x-amzn-ErrorType`` and ``{"Type": ..., "message": ...}``."""
    error_type = headers.get("x-amzn-ErrorType")
    assert error_type, f"{status} without x-amzn-ErrorType: {body[:300]!r}"
    assert headers.get("x-amzn-RequestId"), f"{status} {error_type} without x-amzn-RequestId"
    document = json.loads(body)
    assert isinstance(document, dict), body
    assert document.get("Type") == ("User" if status < 500 else "Service"), document
    assert isinstance(document.get("message"), str), document
    return str(error_type)


def assert_runtime_error(body: bytes) -> str:
    """A Runtime API error as RAPID sends it: ``{"errorMessage": ..., "errorType": ...}``."""
    document = json.loads(body)
    assert isinstance(document, dict), body
    assert isinstance(document.get("errorType"), str) and document["errorType"], document
    assert isinstance(document.get("errorMessage"), str), document
    return str(document["errorType"])

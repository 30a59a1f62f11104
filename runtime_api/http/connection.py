"""One HTTP/1.1 connection: llhttp (through httptools) parses the requests as bytes arrive, and they are answered
in order, one handler at a time; and how a response is written on the wire."""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from collections.abc import Mapping
from http import HTTPStatus
from typing import TYPE_CHECKING

import httptools

from .message import Body, BodyError, Request, Response, StreamingResponse

if TYPE_CHECKING:
    from .server import HttpServer

log = logging.getLogger("lambda_freeze.http")

MAX_HEAD_BYTES = 64 * 1024  # request line plus header fields (and, separately, the trailer section)
MAX_PIPELINED = 16  # requests read ahead on one connection while an earlier one is being answered

_PHRASES = {status.value: status.phrase.encode() for status in HTTPStatus}
_NO_BODY_STATUSES = frozenset((204, 304))


class _HeadTooLarge(Exception):
    pass


class _Clock:
    """The Date header, formatted once a second."""

    __slots__ = ("_second", "_value")

    def __init__(self) -> None:
        self._second = 0
        self._value = b""

    def date(self) -> bytes:
        now = int(time.time())
        if now != self._second:
            self._second = now
            self._value = _http_date(now)
        return self._value


_DAYS = (b"Mon", b"Tue", b"Wed", b"Thu", b"Fri", b"Sat", b"Sun")
_MONTHS = (b"Jan", b"Feb", b"Mar", b"Apr", b"May", b"Jun", b"Jul", b"Aug", b"Sep", b"Oct", b"Nov", b"Dec")


def _http_date(epoch_s: int) -> bytes:
    """RFC 9110's IMF-fixdate, e.g. ``Sun, 06 Nov 1994 08:49:37 GMT``."""
    t = time.gmtime(epoch_s)
    return b"%s, %02d %s %04d %02d:%02d:%02d GMT" % (
        _DAYS[t.tm_wday], t.tm_mday, _MONTHS[t.tm_mon - 1], t.tm_year, t.tm_hour, t.tm_min, t.tm_sec
    )


_clock = _Clock()


def _head(status: int, headers: Mapping[str, str] | None, extra: list[bytes]) -> list[bytes]:
    lines = [b"HTTP/1.1 ", str(status).encode(), b" ", _PHRASES.get(status, b"Unknown"), b"\r\n"]
    if headers:
        for name, value in headers.items():
            if "\r" in value or "\n" in value:  # never let a value start a header of its own
                value = value.replace("\r", " ").replace("\n", " ")
            lines += (name.encode("latin-1"), b": ", value.encode("latin-1", "replace"), b"\r\n")
    lines += extra
    lines += (b"Date: ", _clock.date(), b"\r\n")
    return lines


def encode_response(response: Response, keep_alive: bool, *, http10: bool = False) -> bytes:
    extra: list[bytes] = []
    if response.content_type is not None:
        extra += (b"Content-Type: ", response.content_type.encode("latin-1"), b"\r\n")
    if response.status not in _NO_BODY_STATUSES:
        extra += (b"Content-Length: ", str(len(response.body)).encode(), b"\r\n")
    if not keep_alive:
        extra.append(b"Connection: close\r\n")
    elif http10:  # an HTTP/1.0 client asked to keep the connection: it must be told it is kept
        extra.append(b"Connection: keep-alive\r\n")
    lines = _head(response.status, response.headers, extra)
    lines.append(b"\r\n")
    if response.body and response.status not in _NO_BODY_STATUSES:
        lines.append(response.body)
    return b"".join(lines)


class HttpProtocol(asyncio.Protocol):
    """One connection: parses requests as bytes arrive and answers them in order, one handler at a time."""

    def __init__(self, server: HttpServer):
        self._server = server
        self._loop = asyncio.get_running_loop()
        self._parser = httptools.HttpRequestParser(self)
        self._transport: asyncio.Transport | None = None
        self._local_port = 0
        # the request being parsed
        self._url = b""
        self._headers: dict[str, str] = {}
        self._head_bytes = 0
        self._parsing: Request | None = None
        self._in_trailers = False
        # the requests being answered (the first one) and read ahead
        self._queue: deque[Request] = deque()
        self._task: asyncio.Task[None] | None = None
        self._reading_paused = False
        self._body_paused = False
        self._closing = False
        self._write_paused = False
        self._drained: asyncio.Future[None] | None = None

    # ------------------------------------------------------------------------------ asyncio.Protocol
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = transport  # type: ignore[assignment]  # uvloop's transports only quack like one
        sockname = transport.get_extra_info("sockname")
        self._local_port = sockname[1] if sockname else 0
        self._server._connections.add(self)

    def connection_lost(self, exc: Exception | None) -> None:
        self._server._connections.discard(self)
        self._transport = None
        reason = exc or ConnectionResetError("the connection was closed")
        for request in self._queue:
            request.body.fail(reason)
        if self._queue and self._queue[0].cancel_on_disconnect and self._task is not None:
            self._task.cancel()
        if self._parsing is not None:
            self._parsing.body.fail(reason)
        if self._drained is not None and not self._drained.done():
            self._drained.set_exception(ConnectionResetError("the connection was closed"))

    def data_received(self, data: bytes) -> None:
        try:
            self._parser.feed_data(data)
        except httptools.HttpParserCallbackError as exc:
            if isinstance(exc.__context__, _HeadTooLarge):
                self._refuse(431, "the request head is too large")
            else:
                log.exception("HTTP parser callback failed")
                self._refuse(400, "the request could not be read")
        except httptools.HttpParserUpgrade:
            self._refuse(400, "protocol upgrades are not supported")
        except httptools.HttpParserError as exc:
            self._refuse(400, f"malformed HTTP request: {exc}")

    def pause_writing(self) -> None:
        self._write_paused = True

    def resume_writing(self) -> None:
        self._write_paused = False
        if self._drained is not None and not self._drained.done():
            self._drained.set_result(None)
        self._drained = None

    # ------------------------------------------------------------------------------ httptools callbacks
    def on_message_begin(self) -> None:
        self._url = b""
        self._headers = {}
        self._head_bytes = 0
        self._in_trailers = False

    def on_url(self, url: bytes) -> None:
        self._head_bytes += len(url)
        if self._head_bytes > MAX_HEAD_BYTES:
            raise _HeadTooLarge
        self._url += url

    def on_header(self, name: bytes, value: bytes) -> None:
        self._head_bytes += len(name) + len(value) + 4
        if self._head_bytes > MAX_HEAD_BYTES:
            raise _HeadTooLarge
        key = name.decode("latin-1").lower()
        text = value.decode("latin-1").strip(" \t")
        fields = self._parsing.body.trailers if self._in_trailers and self._parsing is not None else self._headers
        previous = fields.get(key)
        fields[key] = text if previous is None else f"{previous}, {text}"

    def on_headers_complete(self) -> None:
        parser = self._parser
        headers = self._headers
        length = headers.get("content-length")
        expected: int | None
        if length is not None:
            expected = int(length)  # llhttp has already refused a Content-Length that is not a number
        elif "transfer-encoding" in headers:
            expected = None
        else:
            expected = 0
        body = Body(self, self._server.max_body, expected)
        request = Request(
            parser.get_method().decode("ascii", "replace"),
            self._url.decode("latin-1"),
            headers,
            parser.get_http_version(),
            parser.should_keep_alive(),
            body,
            self._local_port,
        )
        self._parsing = request
        self._in_trailers = True
        self._head_bytes = 0  # the trailer section gets its own allowance
        if headers.get("expect", "").lower() == "100-continue" and request.version == "1.1" and not body.too_large:
            self._write(b"HTTP/1.1 100 Continue\r\n\r\n")
        self._queue.append(request)
        if self._task is None:
            self._task = self._loop.create_task(self._answer())
        elif len(self._queue) > MAX_PIPELINED:
            self._pause_reading()

    def on_body(self, data: bytes) -> None:
        if self._parsing is not None:
            self._parsing.body.feed(data)

    def on_message_complete(self) -> None:
        request = self._parsing
        self._parsing = None
        self._in_trailers = False
        if request is not None:
            request.body.finish()

    # ------------------------------------------------------------------------------ flow control
    def _pause_reading(self) -> None:
        if not self._reading_paused and self._transport is not None:
            self._reading_paused = True
            self._transport.pause_reading()

    def _resume_reading(self) -> None:
        if self._reading_paused and not self._body_paused and self._transport is not None:
            self._reading_paused = False
            self._transport.resume_reading()

    def pause_body(self) -> None:
        self._body_paused = True
        self._pause_reading()

    def resume_body(self) -> None:
        if self._body_paused:
            self._body_paused = False
            if len(self._queue) <= MAX_PIPELINED:
                self._resume_reading()

    def _write(self, data: bytes) -> None:
        if self._transport is not None and not self._transport.is_closing():
            self._transport.write(data)

    async def _drain(self) -> None:
        if self._transport is None:
            raise ConnectionResetError("the connection was closed")
        if self._write_paused:
            if self._drained is None:
                self._drained = self._loop.create_future()
            await self._drained

    # ------------------------------------------------------------------------------ answering
    def _refuse(self, status: int, message: str) -> None:
        """The byte stream cannot be followed any further: a body being read breaks off; the client gets
        ``status`` (unless a handler is answering it already), then the connection closes."""
        self._closing = True
        broken = self._parsing
        self._parsing = None
        if broken is not None and not broken.body.done:
            broken.body.fail(BodyError(message))
            if broken in self._queue:
                return  # its handler answers, then the connection closes
        if self._task is None:
            self._write(encode_response(self._server.error_response(status, message), keep_alive=False))
            if self._transport is not None:
                self._transport.close()
        else:
            self._pause_reading()

    async def _answer(self) -> None:
        try:
            while self._queue and self._transport is not None:
                request = self._queue[0]
                try:
                    response = await self._server.dispatch(request)
                except asyncio.CancelledError:
                    raise
                except Exception:
                    log.exception("unexpected error serving %s %s", request.method, request.path)
                    response = self._server.error_response(500, "internal error")
                keep_alive = request.keep_alive and not self._closing and not self._server.closing
                if not request.body.done:
                    if "expect" in request.headers:
                        # the client may still be waiting for "100 Continue" before it sends the body, or not: the
                        # connection can no longer be followed
                        keep_alive = False
                    request.body.drop()  # read and dropped, so the next request on this connection can follow
                try:
                    if isinstance(response, StreamingResponse):
                        keep_alive = await self._stream(response, keep_alive)
                    else:
                        self._write(encode_response(response, keep_alive, http10=request.version == "1.0"))
                except asyncio.CancelledError:
                    raise
                except Exception:
                    log.exception("unexpected error answering %s %s", request.method, request.path)
                    keep_alive = False
                self._queue.popleft()
                if not keep_alive:
                    if self._transport is not None:
                        self._transport.close()
                    return
                self._body_paused = False  # a body kept unread is no longer waited for
                if len(self._queue) <= MAX_PIPELINED:
                    self._resume_reading()
        except asyncio.CancelledError:
            if self._transport is not None:
                self._transport.close()
            raise
        finally:
            self._task = None

    async def _stream(self, response: StreamingResponse, keep_alive: bool) -> bool:
        """Writes a streamed response in chunks; False when the connection cannot be kept afterwards. A body that
        fails mid-way leaves the chunked coding unterminated, so the client sees the response as cut off."""
        extra = [b"Transfer-Encoding: chunked\r\n"]
        if not keep_alive:
            extra.append(b"Connection: close\r\n")
        self._write(b"".join([*_head(response.status, response.headers, extra), b"\r\n"]))
        body = response.body
        try:
            async for piece in body:
                if self._transport is None:
                    raise ConnectionResetError("the connection was closed")
                if piece:
                    self._write(b"%x\r\n%b\r\n" % (len(piece), piece))
                    await self._drain()
            self._write(b"0\r\n\r\n")
        except ConnectionError:
            return False
        finally:
            aclose = getattr(body, "aclose", None)
            if aclose is not None:
                await aclose()
        return keep_alive and self._transport is not None

    def close_when_idle(self) -> None:
        self._closing = True
        if self._task is None and self._transport is not None:
            self._transport.close()

    def abort(self) -> None:
        if self._task is not None:
            self._task.cancel()
        if self._transport is not None:
            self._transport.close()

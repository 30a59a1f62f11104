"""HTTP/1.1 for the emulator's APIs: asyncio protocols, with llhttp (through httptools) parsing the requests.

Both APIs are small and fixed: a handful of routes, bodies of at most a few MB, long polls, one streamed request body
(a runtime's streamed response, whose outcome comes in the trailers of its chunked body) and one streamed response
(InvokeWithResponseStream). A general web framework costs more per request than the rest of an invocation put
together, and drops the trailers of chunked requests; this module is the part of one that these APIs use.

- ``Router`` maps a method and a path to a handler: ``async handler(request) -> Response | StreamingResponse``.
- ``HttpServer`` serves one handler on any number of listening sockets, keeps connections alive (requests on one
  connection are answered in order), answers ``Expect: 100-continue``, bounds request heads and bodies, and closes
  gracefully: in-flight requests get a grace period, then are cancelled.
- A request body is read whole (``await request.read()``) or piece by piece as it arrives
  (``async for chunk in request.stream()``, with the connection paused while the handler is behind); the trailers
  of a chunked body are in ``request.trailers`` once it has ended. A handler may answer before reading the body:
  the rest of it is then read and dropped, and the connection goes on.
"""

from __future__ import annotations

import asyncio
import logging
import re
import socket
import time
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from http import HTTPStatus
from urllib.parse import parse_qsl, unquote

import httptools

log = logging.getLogger("lambda_freeze.http")

MAX_HEAD_BYTES = 64 * 1024  # request line plus header fields (and, separately, the trailer section)
STREAM_HIGH_WATER = 1024 * 1024  # a streamed body's unread bytes at which the connection stops reading
MAX_PIPELINED = 16  # requests read ahead on one connection while an earlier one is being answered

_PHRASES = {status.value: status.phrase.encode() for status in HTTPStatus}
_NO_BODY_STATUSES = frozenset((204, 304))


class BodyTooLarge(Exception):
    """The request body is longer than allowed; ``size`` is its length as far as it is known."""

    def __init__(self, size: int | None):
        super().__init__(f"request body of {size} bytes is too large")
        self.size = size


class BodyError(Exception):
    """The request body broke off (the connection dropped) or was malformed (bad chunked framing)."""


class _HeadTooLarge(Exception):
    pass


class Response:
    """A whole response. ``headers`` keep their spelling; Content-Length and Date are added when it is written."""

    __slots__ = ("body", "content_type", "headers", "status")

    def __init__(
        self,
        status: int = 200,
        body: bytes = b"",
        *,
        headers: Mapping[str, str] | None = None,
        content_type: str | None = None,
    ):
        self.status = status
        self.body = body
        self.headers = headers
        self.content_type = content_type


class StreamingResponse:
    """A response whose body is written piece by piece, as ``body`` yields them (chunked transfer coding).

    The generator is closed when the caller goes away before it has ended, so its ``finally`` runs either way.
    """

    __slots__ = ("body", "headers", "status")

    def __init__(self, status: int, headers: Mapping[str, str], body: AsyncIterator[bytes]):
        self.status = status
        self.headers = headers
        self.body = body


Handler = Callable[["Request"], Awaitable[Response | StreamingResponse]]


class Body:
    """The body of one request as it arrives, read whole (up to the server's limit) or piece by piece.

    Until the handler reads it, at most the limit is kept: past it the connection stops reading, and a whole read
    raises ``BodyTooLarge``; a piece-by-piece read takes any length, the connection paused while it is behind.
    """

    __slots__ = (
        "_chunks",
        "_error",
        "_limit",
        "_protocol",
        "_streaming",
        "_unread",
        "_waiter",
        "done",
        "dropping",
        "expected",
        "size",
        "trailers",
    )

    def __init__(self, protocol: HttpProtocol, limit: int, expected: int | None):
        self._protocol = protocol
        self._limit = limit
        self._chunks: deque[bytes] = deque()
        self._unread = 0
        self._error: BaseException | None = None
        self._waiter: asyncio.Future[None] | None = None
        self._streaming = False
        self.expected = expected
        self.size = 0
        self.done = expected == 0
        self.dropping = False
        self.trailers: dict[str, str] = {}

    @property
    def too_large(self) -> bool:
        """Known to be over the limit for a whole read: by its Content-Length, or by what has arrived."""
        return (self.expected is not None and self.expected > self._limit) or self.size > self._limit

    # -------------------------------------------------------------------------------- fed by the protocol
    def feed(self, data: bytes) -> None:
        self.size += len(data)
        if self.dropping:
            return
        self._chunks.append(data)
        self._unread += len(data)
        if self._unread > (STREAM_HIGH_WATER if self._streaming else self._limit):
            self._protocol.pause_body()
        self._wake()

    def finish(self) -> None:
        self.done = True
        self._wake()

    def fail(self, exc: BaseException) -> None:
        if not self.done and self._error is None:
            self._error = exc
            self._wake()

    def drop(self) -> None:
        """Nobody will read the rest: what is kept and what still comes is thrown away."""
        self.dropping = True
        self._chunks.clear()
        self._unread = 0
        self._protocol.resume_body()

    def _wake(self) -> None:
        waiter = self._waiter
        if waiter is not None:
            self._waiter = None
            if not waiter.done():
                waiter.set_result(None)

    async def _wait(self) -> None:
        self._waiter = asyncio.get_running_loop().create_future()
        await self._waiter

    # -------------------------------------------------------------------------------- read by the handler
    async def read(self) -> bytes:
        while not self.done and self._error is None and not self.too_large:
            await self._wait()
        if self.too_large:
            raise BodyTooLarge(self.expected if self.expected is not None else self.size)
        if self._error is not None:
            raise BodyError(str(self._error)) from self._error
        if len(self._chunks) == 1:
            return self._chunks[0]
        return b"".join(self._chunks)

    async def stream(self) -> AsyncIterator[bytes]:
        self._streaming = True
        while True:
            if self._chunks:
                chunk = self._chunks.popleft()
                self._unread -= len(chunk)
                if self._unread <= STREAM_HIGH_WATER // 4:
                    self._protocol.resume_body()
                yield chunk
            elif self._error is not None:
                raise BodyError(str(self._error)) from self._error
            elif self.done:
                return
            else:
                await self._wait()


class Request:
    """One request. Header names are lower-cased; ``params`` are the route's decoded path parameters."""

    __slots__ = (
        "_query",
        "body",
        "cancel_on_disconnect",
        "headers",
        "keep_alive",
        "local_port",
        "method",
        "params",
        "path",
        "query_string",
        "target",
        "version",
    )

    def __init__(
        self,
        method: str,
        target: str,
        headers: dict[str, str],
        version: str,
        keep_alive: bool,
        body: Body,
        local_port: int,
    ):
        self.method = method
        self.target = target
        path, _, self.query_string = target.partition("?")
        self.path = path
        self.headers = headers
        self.version = version
        self.keep_alive = keep_alive
        self.body = body
        self.local_port = local_port
        self.params: dict[str, str] = {}
        self._query: dict[str, str] | None = None
        # A handler that only waits (a long poll) sets this: when the client goes away, it is cancelled.
        self.cancel_on_disconnect = False

    @property
    def query(self) -> dict[str, str]:
        """The query parameters (the first of each name), decoded."""
        if self._query is None:
            self._query = {}
            for name, value in parse_qsl(self.query_string, keep_blank_values=True):
                self._query.setdefault(name, value)
        return self._query

    @property
    def content_length(self) -> int | None:
        return self.body.expected

    @property
    def trailers(self) -> dict[str, str]:
        """The trailer fields of a chunked body (names lower-cased), once the body has ended."""
        return self.body.trailers

    async def read(self) -> bytes:
        """The whole body; ``BodyTooLarge`` past the server's limit, ``BodyError`` when it broke off."""
        return await self.body.read()

    def stream(self) -> AsyncIterator[bytes]:
        """The body piece by piece as it arrives; ``BodyError`` when it broke off."""
        return self.body.stream()


class NotFound(Exception):
    pass


class MethodNotAllowed(Exception):
    def __init__(self, allowed: list[str]):
        super().__init__(", ".join(allowed))
        self.allowed = allowed


class Router:
    """Routes by method and path; ``{name}`` in a template matches one path segment, passed on decoded."""

    def __init__(self) -> None:
        self._static: dict[str, dict[str, Handler]] = {}
        self._patterns: list[tuple[re.Pattern[str], dict[str, Handler]]] = []
        self._templates: dict[str, dict[str, Handler]] = {}

    def add(self, method: str, template: str, handler: Handler) -> None:
        methods = self._templates.get(template)
        if methods is None:
            methods = self._templates[template] = {}
            if "{" in template:
                regex = "^" + "".join(
                    f"(?P<{part[1:-1]}>[^/]+)" if part.startswith("{") else re.escape(part)
                    for part in _split_template(template)
                ) + "$"
                self._patterns.append((re.compile(regex), methods))
            else:
                self._static[template] = methods
        methods[method] = handler

    def routes(self) -> list[tuple[str, str]]:
        """Every (method, template) served."""
        return [(method, template) for template, methods in self._templates.items() for method in methods]

    def resolve(self, request: Request) -> Handler:
        methods = self._static.get(request.path)
        if methods is None:
            for pattern, candidates in self._patterns:
                match = pattern.match(request.path)
                if match is not None:
                    request.params = {name: unquote(value) for name, value in match.groupdict().items()}
                    methods = candidates
                    break
            else:
                raise NotFound(request.path)
        handler = methods.get(request.method)
        if handler is None:
            raise MethodNotAllowed(sorted(methods))
        return handler


def _split_template(template: str) -> list[str]:
    parts: list[str] = []
    rest = template
    while "{" in rest:
        before, _, after = rest.partition("{")
        name, _, rest = after.partition("}")
        parts.extend((before, "{" + name + "}"))
    parts.append(rest)
    return [part for part in parts if part]


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
                self._drained = asyncio.get_running_loop().create_future()
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


class HttpServer:
    """One request handler behind any number of listening sockets.

    ``error_response(status, message)`` renders the errors of the HTTP layer itself (unknown route, method not
    allowed, malformed request) in the API's own shape.
    """

    def __init__(
        self,
        handler: Handler,
        *,
        max_body: int,
        error_response: Callable[[int, str], Response],
    ):
        self.dispatch = handler
        self.max_body = max_body
        self.error_response = error_response
        self.closing = False
        self._listeners: list[asyncio.Server] = []
        self._connections: set[HttpProtocol] = set()

    async def listen(self, sock: socket.socket) -> asyncio.Server:
        """Serve on ``sock`` (bound; listened on here)."""
        loop = asyncio.get_running_loop()
        listener = await loop.create_server(lambda: HttpProtocol(self), sock=sock, backlog=512)
        self._listeners.append(listener)
        return listener

    def stop_listening(self, listener: asyncio.Server) -> None:
        """Stop accepting on one socket, and close the idle connections that came through it."""
        if listener in self._listeners:
            self._listeners.remove(listener)
        sockets = listener.sockets
        ports = {sock.getsockname()[1] for sock in sockets}
        listener.close()
        for connection in list(self._connections):
            if connection._local_port in ports:
                connection.close_when_idle()

    async def close(self, grace_s: float) -> None:
        """Stop accepting; requests in flight get ``grace_s`` to be answered, then are cancelled."""
        self.closing = True
        for listener in self._listeners:
            listener.close()
        self._listeners.clear()
        for connection in list(self._connections):
            connection.close_when_idle()
        tasks = [c._task for c in self._connections if c._task is not None]
        if tasks:
            await asyncio.wait(tasks, timeout=grace_s)
        for connection in list(self._connections):
            connection.abort()
        remaining = [c._task for c in self._connections if c._task is not None]
        if remaining:
            await asyncio.wait(remaining, timeout=1.0)


def route_errors(router: Router, handler_errors: Callable[[Request, Exception], Response | None]) -> Handler:
    """A dispatcher: the router's handler, with ``NotFound``/``MethodNotAllowed`` and the API's own exceptions
    rendered by ``handler_errors`` (which returns None for an exception it does not know, so it propagates)."""

    async def dispatch(request: Request) -> Response | StreamingResponse:
        try:
            return await router.resolve(request)(request)
        except Exception as exc:
            rendered = handler_errors(request, exc)
            if rendered is None:
                raise
            return rendered

    return dispatch


__all__ = [
    "Body",
    "BodyError",
    "BodyTooLarge",
    "HttpServer",
    "MethodNotAllowed",
    "NotFound",
    "Request",
    "Response",
    "Router",
    "StreamingResponse",
    "route_errors",
]

"""One HTTP/1.1 connection: llhttp (through httptools) parses the requests as bytes arrive, within the bounds of
``limits``, and they are answered in order, one handler at a time, no faster than the client reads the answers."""

from __future__ import annotations

import asyncio
import logging

import httptools

from .framing import CHUNKED, Framing, HeadTooLarge
from .limits import MAX_PIPELINED, MAX_READ_AHEAD_BYTES, ServerSide
from .message import Body, BodyError, Request, StreamingResponse, origin_form
from .wire import CONTINUE, encode_response, write_stream

log = logging.getLogger("lambda_freeze.http")

LINGER_S = 2.0  # after an error answer, how long what the client still sends is read and dropped


class _Refused(Exception):
    """The request cannot be served as sent: answered with ``status``, then the connection closes."""

    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status = status
        self.message = message


class HttpProtocol(asyncio.Protocol):
    """One connection: parses requests as bytes arrive and answers them in order, one handler at a time."""

    def __init__(self, server: ServerSide):
        self._server = server
        self._limits = limits = server.limits
        self._loop = asyncio.get_running_loop()
        self._parser = httptools.HttpRequestParser(self)
        self._framing = Framing(self._parser.feed_data, limits.max_head_bytes)
        self._transport: asyncio.Transport | None = None
        self.local_port = 0
        # the request being parsed
        self._url = b""
        self._headers: dict[str, str] = {}
        self._hosts = 0
        self._trailer_bytes = 0
        self._parsing: Request | None = None
        self._in_trailers = False
        # the requests being answered (the first one) and read ahead
        self._queue: list[Request] = []
        self._ahead_bytes = 0  # body bytes of requests read ahead
        self.task: asyncio.Task[None] | None = None
        self._reading_paused = False
        self._body_paused = False
        self._write_paused = False
        self._closing = False
        self._refused = False
        self._backlog = b""  # bytes read but not parsed while reading was paused
        self._refusal: tuple[int, str] | None = None  # a refused head's answer, after the answers before it
        self._drained: asyncio.Future[None] | None = None
        # timeouts: the server's sweep closes the connection once ``deadline`` (loop time; 0: none) has passed
        self.deadline = 0.0
        self._awaiting_head = True  # no request begun since the last one ended
        self._header_timeout_s = limits.header_timeout_s
        self._body_timeout_s = limits.body_timeout_s
        self._max_line = limits.max_line_bytes

    # ------------------------------------------------------------------------------ asyncio.Protocol
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = transport  # type: ignore[assignment]  # uvloop's transports only quack like one
        sockname = transport.get_extra_info("sockname")
        self.local_port = sockname[1] if sockname else 0
        refusal = self._server.admit(self, transport.get_extra_info("peername"), sockname)
        if refusal is not None:
            self._refused = True
            self._closing = True
            self._write(encode_response(refusal, keep_alive=False))
            self._linger()  # the client may already be sending: its request must not turn the answer into a reset
            return
        self._arm(self._limits.header_timeout_s)

    def connection_lost(self, exc: Exception | None) -> None:
        self._server.gone(self)
        self._transport = None
        reason = exc or ConnectionResetError("the connection was closed")
        for request in self._queue:
            request.body.fail(reason)
        if self._queue and self._queue[0].cancel_on_disconnect and self.task is not None:
            self.task.cancel()
        if self._parsing is not None:
            self._parsing.body.fail(reason)
        if self._drained is not None and not self._drained.done():
            self._drained.set_exception(ConnectionResetError("the connection was closed"))

    def data_received(self, data: bytes) -> None:
        if self._refused:
            return  # the stream cannot be followed any further: what follows is dropped until the close
        try:
            rest = self._framing.feed(data)
            if rest and not self._refused:
                self._backlog = rest  # read, not yet parsed: parsed when the connection reads on
        except HeadTooLarge:
            self._refuse(431, "the request head is too large")
        except httptools.HttpParserCallbackError as exc:
            cause = exc.__context__
            if isinstance(cause, _Refused):
                self._refuse(cause.status, cause.message)
            else:
                log.exception("HTTP parser callback failed")
                self._refuse(400, "the request could not be read")
        except httptools.HttpParserUpgrade:
            # the request is answered as plain HTTP; what follows it is another protocol: the connection ends there
            self._refused = self._closing = True
            if self.task is None:
                self._linger()
            else:
                self._pause_reading()
        except httptools.HttpParserError as exc:
            self._refuse(400, f"malformed HTTP request: {exc}")

    def eof_received(self) -> bool:
        """The client has sent all it will (a half-close): the requests it sent are still answered, then the
        connection closes; a request cut off by the end breaks off."""
        self._closing = True
        broken = self._parsing
        if broken is not None and not broken.body.done:
            self._parsing = None
            broken.body.fail(BodyError("the client ended the connection mid-request"))
        if self._queue and self._queue[0].cancel_on_disconnect:
            return False  # a long poll whose client is gone is withdrawn, as when the connection drops
        return self.task is not None  # True keeps the write side open until the answers are written

    def pause_writing(self) -> None:
        # The client does not read its answers: no more of its requests are read until it does.
        self._write_paused = True
        self._pause_reading()

    def resume_writing(self) -> None:
        self._write_paused = False
        self._resume_reading()
        if self._drained is not None and not self._drained.done():
            self._drained.set_result(None)
        self._drained = None

    # ------------------------------------------------------------------------------ httptools callbacks
    def on_message_begin(self) -> None:
        self._url = b""
        self._headers = {}
        self._hosts = 0
        self._in_trailers = False
        self._awaiting_head = False
        if self._header_timeout_s is not None:  # from the first byte of each head, pipelined ones too
            self.deadline = self._loop.time() + self._header_timeout_s

    def on_url(self, url: bytes) -> None:
        self._url += url
        if len(self._url) > self._limits.max_line_bytes:
            raise _Refused(414, "the request target is too long")

    def on_header(self, name: bytes, value: bytes) -> None:
        size = len(name) + len(value)
        if size > self._max_line:
            raise _Refused(431, "a request header field is too large")
        key = name.decode("latin-1").lower()
        text = value.decode("latin-1").strip(" \t")
        if self._in_trailers and self._parsing is not None:
            self._trailer_bytes += size + 4
            if self._trailer_bytes > self._limits.max_head_bytes:
                raise _Refused(431, "the request trailers are too large")
            fields = self._parsing.body.trailers
        else:
            fields = self._headers
            if key == "host":
                self._hosts += 1
        previous = fields.get(key)
        fields[key] = text if previous is None else f"{previous}, {text}"

    def on_headers_complete(self) -> None:
        parser = self._parser
        headers = self._headers
        version = parser.get_http_version()
        if version != "1.1" and version != "1.0":
            raise _Refused(505, f"HTTP/{version} is not supported: this server speaks HTTP/1.1")
        if self._hosts != 1 and (self._hosts or version == "1.1"):
            # RFC 9112 section 3.2: a request without exactly one Host is answered 400
            raise _Refused(400, "an HTTP/1.1 request needs exactly one Host header")
        length = headers.get("content-length")
        expected: int | None
        if length is not None:
            expected = int(length)  # llhttp has already refused a Content-Length that is not a number
        elif "transfer-encoding" in headers:
            if headers["transfer-encoding"].lower() != "chunked":
                # llhttp frames any coding list that ends in chunked; no other coding is understood here
                raise _Refused(501, f"Transfer-Encoding {headers['transfer-encoding']} is not implemented")
            expected = None
        else:
            expected = 0
        self._framing.body(expected)
        body = Body(self, self._server.max_body, expected)
        url = self._url
        request = Request(
            parser.get_method().decode("ascii", "replace"),
            (url if url[0] == 47 else origin_form(url)).decode("latin-1"),  # 47: "/", the origin form
            headers,
            version,
            parser.should_keep_alive(),
            body,
            self.local_port,
        )
        self._parsing = request
        self._in_trailers = True
        self._trailer_bytes = 0
        queue = self._queue
        if expected != 0 and self._body_timeout_s is not None:
            self.deadline = self._loop.time() + self._body_timeout_s
        else:
            self.deadline = 0.0  # complete: it waits for its answer, never timed out
        if version == "1.1" and not body.too_large and headers.get("expect", "").lower() == "100-continue":
            if queue:
                request.continue_pending = True  # written once the requests before it are answered
            else:
                self._write(CONTINUE)
        queue.append(request)
        if self.task is None:
            self.task = self._loop.create_task(self._answer())
        elif len(queue) > MAX_PIPELINED:
            self._pause_reading()

    def on_body(self, data: bytes) -> None:
        request = self._parsing
        if request is not None:
            self._framing.moved = True
            if self._body_timeout_s is not None:
                self.deadline = self._loop.time() + self._body_timeout_s  # renewed by every piece
            request.body.feed(data)
            queue = self._queue
            if queue and request is not queue[0]:  # read ahead (an answered request's rest is dropped)
                self._ahead_bytes += len(data)
                if self._ahead_bytes > MAX_READ_AHEAD_BYTES:
                    self._pause_reading()

    def on_message_complete(self) -> None:
        request = self._parsing
        self._parsing = None
        self._in_trailers = False
        self._framing.message_done()
        self._awaiting_head = True
        self.deadline = 0.0
        if request is not None:
            request.body.finish()

    # ------------------------------------------------------------------------------ flow control and timeouts
    def _arm(self, timeout_s: float | None) -> None:
        self.deadline = self._loop.time() + timeout_s if timeout_s is not None else 0.0

    def _pause_reading(self) -> None:
        if not self._reading_paused and self._transport is not None:
            self._reading_paused = True
            self._framing.hold = True  # the rest of the read being parsed waits too
            self._transport.pause_reading()

    def _resume_reading(self) -> None:
        if (
            self._reading_paused
            and not self._body_paused
            and not self._write_paused
            and len(self._queue) <= MAX_PIPELINED
            and self._ahead_bytes <= MAX_READ_AHEAD_BYTES
            and self._transport is not None
        ):
            self._reading_paused = False
            self._framing.hold = False
            self._transport.resume_reading()
            backlog = self._backlog
            if backlog:  # before anything read from now on
                self._backlog = b""
                self.data_received(backlog)
            if self.deadline:  # the wait was the server's, not the client's
                self._arm(
                    self._limits.body_timeout_s
                    if self._parsing is not None
                    else self._limits.header_timeout_s
                )

    def pause_body(self) -> None:
        self._body_paused = True
        self._pause_reading()

    def resume_body(self) -> None:
        if self._body_paused:
            self._body_paused = False
            self._resume_reading()

    def waiting_for_client(self) -> bool:
        """Whether the connection waits on its client (not on a handler, nor on its own paused reading)."""
        return self.deadline != 0.0 and not self._reading_paused

    def time_out(self) -> None:
        """The client took too long: a request head or body stopped arriving, or a kept-alive connection idled."""
        if self._framing.state == CHUNKED or self._parsing is not None:
            self._refuse(408, "the request body did not arrive in time")
        elif not self._awaiting_head:
            self._refuse(408, "the request head did not arrive in time")
        else:
            self.deadline = 0.0
            self.close_when_idle()

    def _open(self) -> bool:
        return self._transport is not None

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
        """The byte stream cannot be followed any further: a body being read breaks off (its handler answers); a
        refused head gets ``status`` once the requests before it are answered; then the connection closes."""
        self._refused = True
        self.deadline = 0.0
        broken = self._parsing
        self._parsing = None
        if broken is not None and not broken.body.done:
            broken.body.fail(BodyError(message))
            if broken in self._queue:
                self._closing = True
                return  # its handler answers, then the connection closes
        if self.task is None:
            self._closing = True
            self._write(encode_response(self._server.error_response(status, message), keep_alive=False))
            self._linger()
        else:
            self._refusal = (status, message)
            self._pause_reading()

    def _linger(self) -> None:
        """Close after an error answer as nginx's lingering close does: the write side first, then what the client
        still sends is read and dropped for a moment, so that the kernel does not answer it with a reset that
        destroys the answer before the client has read it."""
        transport = self._transport
        if transport is None:
            return
        if not transport.can_write_eof():
            transport.close()
            return
        transport.write_eof()
        self._reading_paused = False
        transport.resume_reading()
        self._loop.call_later(LINGER_S, transport.close)

    async def _answer(self) -> None:
        queue = self._queue
        try:
            while queue and self._transport is not None:
                request = queue[0]
                if request.continue_pending:
                    self._write(CONTINUE)
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
                        keep_alive = await write_stream(response, keep_alive, self._write, self._drain, self._open)
                    else:
                        self._write(encode_response(response, keep_alive, http10=request.version == "1.0"))
                        if self._write_paused:
                            await self._drain()  # the next answer waits until the client reads this one
                except asyncio.CancelledError:
                    raise
                except ConnectionError:
                    keep_alive = False  # the client went away while its answer was being written
                except Exception:
                    log.exception("unexpected error answering %s %s", request.method, request.path)
                    keep_alive = False
                del queue[0]
                if self._ahead_bytes:
                    self._ahead_bytes = max(0, self._ahead_bytes - queue[0].body.size) if queue else 0
                if keep_alive and not queue and self._refusal is not None:
                    status, message = self._refusal
                    self._write(encode_response(self._server.error_response(status, message), keep_alive=False))
                    keep_alive = False
                if not keep_alive:
                    if self._refused:
                        self._closing = True
                        self._linger()
                    elif self._transport is not None:
                        self._transport.close()
                    return
                self._body_paused = False  # a body kept unread is no longer waited for
                if self._reading_paused:
                    self._resume_reading()
                if not queue and self._awaiting_head and self._parsing is None:
                    idle_s = self._limits.idle_timeout_s
                    self.deadline = self._loop.time() + idle_s if idle_s is not None else 0.0
        except asyncio.CancelledError:
            if self._transport is not None:
                self._transport.close()
            raise
        finally:
            self.task = None

    def close_when_idle(self) -> None:
        self._closing = True
        if self.task is None and self._transport is not None:
            self._transport.close()

    def abort(self) -> None:
        if self.task is not None:
            self.task.cancel()
        if self._transport is not None:
            self._transport.close()

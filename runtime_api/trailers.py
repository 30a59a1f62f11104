"""The trailer section of chunked request bodies, which aiohttp parses and then drops (aio-libs/aiohttp#1652).

A streaming runtime reports a failure that happens mid-stream in trailers (``Lambda-Runtime-Function-Error-Type``,
``Lambda-Runtime-Function-Error-Body``). aiohttp 3.14 exposes no trailers: its pure-Python parser parses them and
discards the result, and its C parser (llhttp) passes them to header callbacks after the request was built, where
they are never surfaced. So each Runtime API connection passes through a ``TrailerTap`` before aiohttp's request
handler sees the bytes: it follows the HTTP/1.1 request framing (head, then a Content-Length or chunked body) and
keeps the trailers of each chunked request by request target, until the handler takes them.

The tap only observes: the bytes reach aiohttp unchanged. It follows framing without judging it; whatever it does
not understand (an upgrade, a malformed line, an internal error) makes it stop following that connection, which
then just has no trailers. It is fed each piece of data before aiohttp is, so once a handler has read a body to
its end, that body's trailers are already stored.
"""

from __future__ import annotations

import asyncio
import logging
import socket
from collections import OrderedDict
from collections.abc import Callable
from typing import Any

from aiohttp import web
from multidict import CIMultiDict, CIMultiDictProxy

log = logging.getLogger("lambda_freeze.runtime_api")

MAX_HEAD_BYTES = 64 * 1024  # a request head, a chunk-size line or a trailer line (aiohttp refuses longer ones)
_END_OF_HEAD = b"\r\n\r\n"
_EMPTY: CIMultiDictProxy[str] = CIMultiDictProxy(CIMultiDict())


class TrailerStore:
    """Trailers of chunked requests that have ended, by request target, until their handler takes them.

    Request targets carry the invocation's request id, so they do not repeat; the store keeps at most
    ``capacity`` entries (trailers nobody asked for, e.g. on a chunked ``/error``, age out).
    """

    def __init__(self, capacity: int = 64):
        self._capacity = capacity
        self._items: OrderedDict[str, CIMultiDictProxy[str]] = OrderedDict()

    def put(self, target: str, trailers: CIMultiDict[str]) -> None:
        self._items[target] = CIMultiDictProxy(trailers)
        self._items.move_to_end(target)
        while len(self._items) > self._capacity:
            self._items.popitem(last=False)

    def take(self, target: str) -> CIMultiDictProxy[str]:
        """The trailers of the ended request with this target (as on its request line); empty when it had none."""
        return self._items.pop(target, _EMPTY)


class _Framing:
    """Follows the request framing of one connection: each request head at once (one search for its end, a few
    for the fields that frame the body), body bytes skipped without copying, a chunked body's lines one by one."""

    HEAD, BODY, CHUNK_SIZE, CHUNK_DATA, CHUNK_END, TRAILERS, STOPPED = range(7)

    def __init__(self, store: TrailerStore):
        self._store = store
        self.state = self.HEAD
        self._pending = bytearray()  # an unfinished head or line
        self._remaining = 0  # body or chunk bytes still to skip
        self._target = ""
        self._trailers: CIMultiDict[str] = CIMultiDict()

    def feed(self, data: bytes) -> None:
        pos, end = 0, len(data)
        while pos < end and self.state != self.STOPPED:
            state = self.state
            if state == self.BODY or state == self.CHUNK_DATA:
                skipped = min(self._remaining, end - pos)
                pos += skipped
                self._remaining -= skipped
                if self._remaining == 0:
                    self.state = self.HEAD if state == self.BODY else self.CHUNK_END
                continue
            separator = _END_OF_HEAD if state == self.HEAD else b"\r\n"
            if self._pending:  # the head or line began in an earlier piece
                already = len(self._pending)
                self._pending += data[pos:]
                found = self._pending.find(separator, max(0, already - len(separator) + 1))
                if found < 0:
                    pos = end
                else:
                    pos += found + len(separator) - already
                    piece = bytes(self._pending[:found])
                    self._pending.clear()
                    self._on_piece(piece)
            else:
                found = data.find(separator, pos)
                if found < 0:
                    self._pending += data[pos:]
                    pos = end
                else:
                    piece = data[pos:found]
                    pos = found + len(separator)
                    self._on_piece(piece)
            if len(self._pending) > MAX_HEAD_BYTES:
                self._stop("head or line too long")

    def _stop(self, why: str) -> None:
        log.debug("trailer tap stops following a connection: %s", why)
        self.state = self.STOPPED

    def _on_piece(self, piece: bytes) -> None:
        """A whole request head (HEAD), or a line without its CRLF."""
        state = self.state
        if state == self.HEAD:
            self._on_head(piece.lstrip(b"\r\n"))  # empty lines may precede a request line (RFC 9112, 2.2)
        elif state == self.CHUNK_SIZE:
            try:
                size = int(piece.split(b";", 1)[0].strip(), 16)
            except ValueError:
                self._stop(f"chunk size {piece[:80]!r}")
                return
            self._remaining = size
            self.state = self.CHUNK_DATA if size > 0 else self.TRAILERS
        elif state == self.CHUNK_END:
            if piece:
                self._stop("no CRLF after chunk data")
            else:
                self.state = self.CHUNK_SIZE
        elif state == self.TRAILERS:
            if not piece:
                if self._trailers:
                    self._store.put(self._target, self._trailers)
                self.state = self.HEAD
                return
            name, colon, value = piece.partition(b":")
            if not colon or not name.strip():
                self._stop(f"trailer {piece[:80]!r}")
                return
            self._trailers.add(name.strip().decode("latin-1"), value.strip().decode("latin-1"))

    def _on_head(self, head: bytes) -> None:
        if not head:
            return  # only empty lines so far
        request_line, _, fields = head.partition(b"\r\n")
        parts = request_line.split(b" ")
        fields = b"\n" + fields.lower()
        if len(parts) != 3 or parts[0] == b"CONNECT" or _field(fields, b"upgrade") is not None:
            self._stop(f"request {request_line[:80]!r}")
            return
        self._target = parts[1].decode("utf-8", "surrogateescape")
        coding = _field(fields, b"transfer-encoding")
        if coding is not None and coding.endswith(b"chunked"):
            self._trailers = CIMultiDict()
            self.state = self.CHUNK_SIZE
            return
        length = _field(fields, b"content-length")
        if length:
            try:
                self._remaining = int(length)
            except ValueError:
                self._stop(f"Content-Length {length[:80]!r}")
                return
            if self._remaining > 0:
                self.state = self.BODY


def _field(fields: bytes, name: bytes) -> bytes | None:
    """The value of the last ``name`` field in ``fields`` (lower-cased, each line after a LF), stripped."""
    at = fields.rfind(b"\n" + name)
    while at >= 0:
        start = at + 1 + len(name)
        line_end = fields.find(b"\r", start)
        rest = fields[start : line_end if line_end >= 0 else len(fields)]
        separator, colon, value = rest.partition(b":")
        if colon and not separator.strip(b" \t"):
            return value.strip(b" \t")
        at = fields.rfind(b"\n" + name, 0, at)  # a longer name that starts alike (``upgrade-insecure-requests``)
    return None


class TrailerTap(asyncio.Protocol):
    """Wraps aiohttp's request handler for one connection: every byte goes to the framing first, then to it."""

    def __init__(self, inner: asyncio.Protocol, store: TrailerStore):
        self._inner = inner
        self._framing: _Framing | None = _Framing(store)

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._inner.connection_made(transport)

    def data_received(self, data: bytes) -> None:
        if self._framing is not None:
            try:
                self._framing.feed(data)
            except Exception:  # the tap must never break the Runtime API: it stops, and the request goes on
                log.exception("trailer tap failed; this connection's trailers are no longer read")
                self._framing = None
        self._inner.data_received(data)

    def eof_received(self) -> bool | None:
        return self._inner.eof_received()

    def connection_lost(self, exc: Exception | None) -> None:
        self._inner.connection_lost(exc)

    def pause_writing(self) -> None:
        self._inner.pause_writing()

    def resume_writing(self) -> None:
        self._inner.resume_writing()


class TrailerTapSite(web.BaseSite):
    """Serves a runner on an already bound socket (as ``web.SockSite``), each connection through a ``TrailerTap``."""

    __slots__ = ("_sock", "_store")

    def __init__(self, runner: web.BaseRunner, sock: socket.socket, store: TrailerStore, **kwargs: Any):
        super().__init__(runner, **kwargs)
        self._sock = sock
        self._store = store

    @property
    def name(self) -> str:
        host, port = self._sock.getsockname()[:2]
        return f"http://{host}:{port}"

    async def start(self) -> None:
        await super().start()
        server = self._runner.server
        if server is None:
            raise RuntimeError("the runner's setup() must be awaited before TrailerTapSite.start()")
        protocol_factory: Callable[[], asyncio.Protocol] = server
        store = self._store
        self._server = await asyncio.get_running_loop().create_server(
            lambda: TrailerTap(protocol_factory(), store), sock=self._sock, backlog=self._backlog
        )

"""A connection that also keeps each request's header fields as they came, one by one, and the client's address:
for a surface whose events show repeated fields apart and the caller's IP (the front door). The Invoke and Runtime
APIs use the plain connection, which keeps neither."""

from __future__ import annotations

import asyncio

from .connection import HttpProtocol
from .limits import ServerSide


class RawHeadersProtocol(HttpProtocol):
    """``HttpProtocol`` that fills ``Request.header_lines`` (names lower-cased, values trimmed, in order, trailers
    left out) and ``Request.peer`` (the peer's IP address)."""

    def __init__(self, server: ServerSide):
        super().__init__(server)
        self._lines: list[tuple[str, str]] = []
        self._peer: str | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        peer = transport.get_extra_info("peername")
        # an IPv4 or IPv6 socket's peer is a tuple whose first item is the address; a Unix socket has none
        self._peer = str(peer[0]) if isinstance(peer, tuple) and peer else None
        super().connection_made(transport)

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._lines = []

    def on_header(self, name: bytes, value: bytes) -> None:
        super().on_header(name, value)  # checks the field's size first: a refused field is never kept
        if not self._in_trailers:
            self._lines.append((name.decode("latin-1").lower(), value.decode("latin-1").strip(" \t")))

    def on_headers_complete(self) -> None:
        super().on_headers_complete()
        request = self._parsing  # the request just made; its handler has not started yet (a task, run later)
        if request is not None:
            request.header_lines = self._lines
            request.peer = self._peer

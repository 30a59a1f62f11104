"""One socket of a proxied connection, the client's or the upstream's, as an asyncio protocol."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Protocol, cast

from .chunk import Chunk, End
from .sockets import linger_zero, no_delay


class SideConnection(Protocol):
    """What a socket tells, and asks of, its connection (``Connection``)."""

    last_activity_s: float

    @property
    def blackholed(self) -> bool: ...

    @property
    def pending(self) -> list[Chunk] | None: ...

    @property
    def upstream(self) -> Side: ...

    def side_made(self, side: Side) -> None: ...

    def side_ended(self, side: Side, end: End, exc: BaseException | None) -> None: ...


class SideLink(Protocol):
    """The direction this socket is the source of (``ToxicLink``): what it reads goes there."""

    @property
    def idle(self) -> bool: ...

    def feed(self, chunk: Chunk) -> None: ...

    def drop(self, chunk: Chunk, *, toxic: str | None, reason: str) -> None: ...


_monotonic = time.monotonic


class Side(asyncio.Protocol):
    """Reads feed the link this socket is the source of; the link's output is written here by the connection.

    ``forward`` is chosen by ``refresh_forward``: with no toxic on the link it is the other socket's
    ``transport.write`` itself, so plain pass-through costs one call per chunk, no task and no queue.
    """

    peer: Side
    link: SideLink

    def __init__(self, conn: SideConnection, name: str):
        self.conn = conn
        self.name = name  # "client" | "upstream"
        self.transport: asyncio.Transport | None = None
        self.forward: Callable[[bytes], None] = self._feed
        self.bytes_in = 0
        self.eof_in = False  # the peer sent its FIN
        self.eof_out = False  # the proxy sent its FIN to the peer
        self.closed = False  # the proxy closed this socket, or the kernel says it is gone
        self._pauses: set[str] = set()

    # ------------------------------------------------------------------------------------ asyncio callbacks
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports do not subclass asyncio.Transport, but offer the same methods.
        self.transport = cast(asyncio.Transport, transport)
        no_delay(self.transport)
        self.conn.side_made(self)

    def data_received(self, data: bytes) -> None:
        self.conn.last_activity_s = _monotonic()
        self.bytes_in += len(data)
        self.forward(data)

    def eof_received(self) -> bool:
        self.eof_in = True
        self.conn.side_ended(self, End.FIN, None)
        return True  # keep the socket open: a half-closed TCP connection still carries the other direction

    def connection_lost(self, exc: Exception | None) -> None:
        if self.closed:
            return  # the proxy closed it
        self.closed = True
        # A RST from the peer surfaces as ConnectionResetError on read (or BrokenPipe/ECONNRESET on write).
        self.conn.side_ended(self, End.RST if exc is not None else End.FIN, exc)

    def pause_writing(self) -> None:
        self.peer.pause_reading("peer")

    def resume_writing(self) -> None:
        self.peer.resume_reading("peer")

    # ------------------------------------------------------------------------------------------- forwarding
    def refresh_forward(self) -> None:
        peer = self.peer
        if self.conn.blackholed:
            self.forward = self._discard
        elif (
            self.link.idle
            and peer.transport is not None
            and not peer.closed
            and not peer.eof_out
            and (self.conn.pending is None or peer is not self.conn.upstream)
        ):
            self.forward = peer.transport.write
        else:
            self.forward = self._feed

    def _feed(self, data: bytes) -> None:
        self.link.feed(Chunk(data, self.conn.last_activity_s))

    def _discard(self, data: bytes) -> None:
        self.link.drop(Chunk(data, self.conn.last_activity_s), toxic=None, reason="connection dropped")

    # ------------------------------------------------------------------------------------ flow and closing
    def pause_reading(self, reason: str) -> None:
        self._pauses.add(reason)
        if self.transport is not None and not self.closed and not self.eof_in:
            self.transport.pause_reading()

    def resume_reading(self, reason: str) -> None:
        self._pauses.discard(reason)
        # Never resume after EOF: the transport would read the EOF again.
        if not self._pauses and self.transport is not None and not self.closed and not self.eof_in:
            self.transport.resume_reading()

    def write(self, data: bytes) -> bool:
        if self.transport is None or self.closed or self.eof_out:
            return False
        self.transport.write(data)
        return True

    def write_eof(self) -> bool:
        """Half-close: send our FIN, keep reading. False if the socket is already gone."""
        if self.transport is None or self.closed or self.eof_out:
            return False
        self.eof_out = True
        try:
            if self.transport.can_write_eof():
                self.transport.write_eof()
        except OSError:
            return False  # the peer reset it meanwhile; its RST will be (or was) reported by connection_lost
        return True

    def close(self, how: End, *, discard: bool = False) -> bool:
        """Close with a FIN, or with a RST (SO_LINGER 0). Buffered bytes go out first unless ``discard``."""
        if self.transport is None or self.closed:
            return False
        self.closed = True
        if how is End.RST:
            linger_zero(self.transport)
        if discard:
            self.transport.abort()
        else:
            self.transport.close()
        return True

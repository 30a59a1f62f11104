"""One client connection through the proxy: its two sockets, its two links, and how each close is passed on."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

from .attempt import ConnectAttempt
from .chunk import Chunk, End
from .config import ProxyConfig
from .events import EventKind, EventLog
from .link import ToxicLink
from .side import Side
from .sockets import segments_in
from .toxics.base import Refused

if TYPE_CHECKING:
    from .registry import ToxicEntry

log = logging.getLogger("lambda_freeze.proxy")


@dataclass(frozen=True, slots=True)
class ConnectionInfo:
    """What ``Proxy.connections()`` lists."""

    id: str
    env_id: str
    client: str  # the client's address, "host:port"
    state: str  # connecting | open | closing | dropped
    opened_at: float  # time.time()
    bytes_up: int  # read from the client
    bytes_down: int  # read from the upstream
    toxics_upstream: tuple[str, ...]
    toxics_downstream: tuple[str, ...]


class Owner(Protocol):
    """What a connection needs from its proxy."""

    config: ProxyConfig
    events: EventLog

    def forget(self, conn: Connection) -> None: ...

    def live_upstreams(self, entry: ToxicEntry, exclude: Connection) -> int: ...


class Watched(Protocol):
    """The environment a connection belongs to, as the proxy follows it (``watch.EnvWatch``)."""

    @property
    def id(self) -> str: ...

    @property
    def frozen(self) -> bool: ...


class Connection:
    def __init__(
        self, owner: Owner, watch: Watched, conn_id: str, stream: list[ToxicEntry], connect: list[ToxicEntry]
    ):
        self._owner = owner
        self._watch = watch
        self._config = owner.config
        self.id = conn_id
        self.env_id = watch.id
        self.client = Side(self, "client")
        self.upstream = Side(self, "upstream")
        self.client.peer, self.upstream.peer = self.upstream, self.client
        self.up = ToxicLink(self, "upstream", self.client, self.upstream)
        self.down = ToxicLink(self, "downstream", self.upstream, self.client)
        self.client.link, self.upstream.link = self.up, self.down
        self.pending: list[Chunk] | None = []  # client bytes read before the upstream connection is made
        self.blackholed = False
        self.finished = False
        self.reserved = False  # counted as an upstream connection by limit_connections
        self.admitted = False  # every connect toxic let it through
        self.last_activity_s = time.monotonic()
        self.opened_at = time.time()
        self.peer_address = ""
        self.done = asyncio.Event()
        self._connect = connect
        self._open_task: asyncio.Task[None] | None = None
        # Built now, not on connection_made: a toxic added in between reaches this connection through add().
        self.up.build([e for e in stream if e.applies(self.env_id, "upstream")])
        self.down.build([e for e in stream if e.applies(self.env_id, "downstream")])

    # ----------------------------------------------------------------------------------------------- status
    @property
    def frozen(self) -> bool:
        return self._watch.frozen

    @property
    def holds_upstream(self) -> bool:
        return not self.finished and (self.admitted or self.reserved)

    def links(self, direction: str) -> tuple[ToxicLink, ...]:
        return {"upstream": (self.up,), "downstream": (self.down,), "both": (self.up, self.down)}[direction]

    def info(self) -> ConnectionInfo:
        if self.blackholed:
            state = "dropped"
        elif self.pending is not None:
            state = "connecting"
        elif self.client.eof_in or self.client.eof_out or self.upstream.eof_in or self.upstream.eof_out:
            state = "closing"
        else:
            state = "open"
        return ConnectionInfo(
            self.id,
            self.env_id,
            self.peer_address,
            state,
            self.opened_at,
            self.client.bytes_in,
            self.upstream.bytes_in,
            self.up.toxic_names,
            self.down.toxic_names,
        )

    def emit(self, kind: EventKind, **fields: object) -> None:
        self._owner.events.emit(kind, env_id=self.env_id, conn_id=self.id, **fields)

    def segments_in(self) -> int | None:
        sides = (self.client, self.upstream)
        counts = [n for n in (segments_in(side.transport) for side in sides) if n is not None]
        return sum(counts) if counts else None

    def wake_stubs(self) -> None:
        for link in (self.up, self.down):
            for stub in link.stubs:
                stub.wake()

    # ------------------------------------------------------------------------------------------ opening
    def side_made(self, side: Side) -> None:
        if self.finished:
            side.close(End.FIN)  # the upstream connection completed after the client had already left
            return
        if side is self.client:
            peer = side.transport.get_extra_info("peername") if side.transport else None
            self.peer_address = f"{peer[0]}:{peer[1]}" if isinstance(peer, tuple) else str(peer or "")
            self.emit(EventKind.CONNECT, side="client", detail=self.peer_address)
            self._open_task = asyncio.get_running_loop().create_task(self._open(), name=f"proxy open {self.id}")
        side.refresh_forward()

    async def _open(self) -> None:
        config = self._config
        entry: ToxicEntry | None = None
        try:
            for entry in self._connect:
                if not entry.removed.is_set():
                    await entry.connect_toxic.admit(ConnectAttempt(self, entry, self._live_upstreams_for(entry)))
            self.admitted = True
            await asyncio.get_running_loop().create_connection(
                lambda: self.upstream, config.upstream_host, config.upstream_port
            )
        except Refused as refused:
            name = entry.name if entry is not None else None
            self.emit(EventKind.REFUSED, toxic=name, how=refused.how.value, detail=refused.reason)
            self._close_side(self.client, refused.how, f"refused: {refused.reason}", toxic=name, discard=True)
            self.finish("refused")
            return
        except OSError as exc:
            self.emit(EventKind.CONNECT_FAILED, side="upstream", detail=f"{type(exc).__name__}: {exc}")
            # Connecting directly, the client would have got ECONNREFUSED; once accepted, a RST is the nearest.
            self._close_side(self.client, End.RST, "upstream unreachable", discard=True)
            self.finish("upstream unreachable")
            return
        except Exception:
            # A connect toxic's bug: contained to this connection, which is reset rather than left waiting.
            log.exception("opening connection %s failed", self.id)
            self.reset("opening failed")
            return
        self.emit(EventKind.UPSTREAM, side="upstream", detail=f"{config.upstream_host}:{config.upstream_port}")
        pending, self.pending = self.pending or [], None
        for chunk in pending:
            self.deliver(self.up, chunk)
        self.client.refresh_forward()

    def _live_upstreams_for(self, entry: ToxicEntry) -> Callable[[], int]:
        return lambda: self._owner.live_upstreams(entry, self)

    # ----------------------------------------------------------------------------------------- data path
    def deliver(self, link: ToxicLink, chunk: Chunk) -> None:
        """The end of a link: write the chunk to its destination socket, or pass on the end of the stream."""
        if self.blackholed:
            link.drop(chunk, toxic=None, reason="connection dropped")
        elif self.pending is not None and link is self.up:
            self.pending.append(chunk)  # a client's FIN included: a request sent with a half-close still counts
        elif chunk.end is not None:
            self._deliver_end(link, chunk.end)
        elif link.dest.write(chunk.data):
            link.settled(len(chunk.data))
        else:
            link.drop(chunk, toxic=None, reason=f"{link.dest.name} socket closed")

    def _deliver_end(self, link: ToxicLink, end: End) -> None:
        dest = link.dest
        how = self._config.outgoing(end)
        cause = "mirror" if self._config.close_mode == "mirror" else f"close_mode={self._config.close_mode}"
        if end is End.FIN and how is End.FIN:
            if dest.write_eof():
                self.emit(EventKind.CLOSE, side=dest.name, by="proxy", how="fin", detail=cause)
            link.source.refresh_forward()
            if all(side.eof_out or side.closed for side in (self.client, self.upstream)):
                self.finish("both sides closed")
        else:
            # Abortive, or made abortive by close_mode: nothing more can flow either way. Bytes already written
            # to ``dest`` go out first, as the peer's did before its RST.
            self._close_side(dest, how, cause)
            self.finish(f"{link.source.name} closed ({end.value})", how=how)

    def side_ended(self, side: Side, end: End, exc: BaseException | None) -> None:
        """The peer of ``side`` sent a FIN (EOF on read) or a RST (ConnectionResetError)."""
        if self.finished:
            return
        self.emit(EventKind.CLOSE, side=side.name, by=side.name, how=end.value, detail=str(exc) if exc else None)
        if self.blackholed:
            if side is self.client:
                self.finish("client closed a dropped connection")
            else:
                # Lost on the way like everything else; the proxy's own socket to the upstream is of no more use.
                self.emit(EventKind.DROPPED, direction="downstream", how=end.value, detail="connection dropped")
                self.upstream.close(End.FIN)
            return
        if self.pending is not None and end is End.RST:
            self.finish("client reset before the upstream connection was made")
            return
        side.link.feed(Chunk(b"", time.monotonic(), end))

    # --------------------------------------------------------------------------------- faults and closing
    def blackhole(self, reason: str, *, toxic: str | None = None) -> None:
        """From now on nothing passes in either direction, not even a FIN or RST."""
        if self.blackholed or self.finished:
            return
        log.debug("connection %s dropped silently by %s: %s", self.id, toxic, reason)
        self.blackholed = True
        self.client.refresh_forward()
        self.upstream.refresh_forward()

    def reset(self, reason: str, toxic: str | None = None) -> None:
        for side in (self.client, self.upstream):
            self._close_side(side, End.RST, reason, toxic=toxic, discard=True)
        self.finish(reason, how=End.RST)

    def close(self, reason: str, toxic: str | None = None, how: End | None = None, *, discard: bool = False) -> None:
        """Close both sockets (``how``, by default as ``close_mode`` closes); ``discard`` drops unsent bytes."""
        how = how or self._config.outgoing(End.FIN)
        for side in (self.client, self.upstream):
            self._close_side(side, how, reason, toxic=toxic, discard=discard or how is End.RST)
        self.finish(reason, how=how)

    def _close_side(self, side: Side, how: End, cause: str, *, toxic: str | None = None, discard: bool = False) -> None:
        sent_fin_already = side.eof_out and how is End.FIN
        if side.close(how, discard=discard) and not sent_fin_already:
            self.emit(EventKind.CLOSE, side=side.name, by="proxy", how=how.value, toxic=toxic, detail=cause)

    def finish(self, cause: str, *, how: End | None = None) -> None:
        """Tear the connection down: stop its toxics, close what is still open, forget it."""
        if self.finished:
            return
        self.finished = True
        if self._open_task is not None and not self._open_task.done():
            self._open_task.cancel()
        self.up.cancel()
        self.down.cancel()
        how = how or self._config.outgoing(End.FIN)
        for side in (self.client, self.upstream):
            self._close_side(side, how, cause)
        self._owner.forget(self)
        self.emit(
            EventKind.CLOSED,
            nbytes=self.client.bytes_in + self.upstream.bytes_in,
            detail=f"{cause}; {self.client.bytes_in} bytes up, {self.upstream.bytes_in} bytes down",
        )
        self.done.set()

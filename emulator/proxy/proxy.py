"""The fault proxy for one upstream: a listening port per environment, toxics, connections, the event log."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

from .aging import ServerIdleTimeout, age
from .chunk import End
from .config import CloseMode, ProxyConfig
from .connection import Connection, ConnectionInfo
from .errors import ProxyError
from .events import EVENTS_MAX, EventKind, EventLog, Subscriber
from .registry import Direction, ToxicEntry, ToxicInfo
from .side import Side
from .toxics.base import Toxic
from .view import EnvironmentView
from .watch import EnvWatch

log = logging.getLogger("lambda_freeze.proxy")


class Proxy:
    """An asyncio TCP proxy in front of ``upstream_host:upstream_port`` that knows whose connection is whose.

    Each execution environment gets its own listening port (``await listen(env)``), so every accepted connection
    belongs to exactly one environment, and the proxy follows that environment's freezes. The emulator points the
    environment's variables at that port (``DB_HOST=127.0.0.1 DB_PORT=<port>``).

        proxy = Proxy("127.0.0.1", 5432, name="postgres")
        port = await proxy.listen(env)
        await proxy.add_toxic("nat", IdleDrop(idle_s=350), direction="both")
        ...
        await proxy.close()
    """

    def __init__(
        self,
        upstream_host: str,
        upstream_port: int,
        *,
        name: str = "",
        listen_host: str = "127.0.0.1",
        close_mode: CloseMode = "mirror",
        events_max: int = EVENTS_MAX,
    ):
        self.config = ProxyConfig(upstream_host, upstream_port, name, listen_host, close_mode, events_max)
        self.name = self.config.name
        self.events = EventLog(self.name, events_max)
        self._watches: dict[str, EnvWatch] = {}
        self._entries: dict[str, ToxicEntry] = {}
        self._manage = asyncio.Lock()  # one re-link at a time: add/update/remove interleaving would reorder chains
        self._closed = False
        self.server_idle: ServerIdleTimeout | None = None  # declared for the upstream: judged on a virtual gap

    @classmethod
    def from_config(cls, config: ProxyConfig) -> Proxy:
        return cls(
            config.upstream_host,
            config.upstream_port,
            name=config.name,
            listen_host=config.listen_host,
            close_mode=config.close_mode,
            events_max=config.events_max,
        )

    async def __aenter__(self) -> Proxy:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    # ----------------------------------------------------------------------------------------- environments
    async def listen(self, env: EnvironmentView) -> int:
        """Open a listening port for ``env``'s connections and follow its freezes; returns the port."""
        if self._closed:
            raise ProxyError(f"proxy {self.name} is closed; create a new Proxy")
        if env.id in self._watches:
            raise ProxyError(f"environment {env.id} already listens on port {self._watches[env.id].port}")
        watch = EnvWatch(env)
        try:
            watch.server = await asyncio.get_running_loop().create_server(
                lambda: self._accept(watch), self.config.listen_host, 0
            )
        except BaseException:
            watch.detach()
            raise
        watch.port = int(watch.server.sockets[0].getsockname()[1])
        self._watches[env.id] = watch
        self.events.emit(EventKind.LISTEN, env_id=env.id, detail=f"{self.config.listen_host}:{watch.port}")
        return watch.port

    def port(self, env_id: str) -> int:
        return self._watch(env_id).port

    async def unlisten(self, env: EnvironmentView | str) -> None:
        """Stop listening for an environment and close its remaining connections (its runtime is gone)."""
        env_id = env if isinstance(env, str) else env.id
        watch = self._watches.pop(env_id, None)
        if watch is None:
            return
        watch.detach()
        if watch.server is not None:
            watch.server.close()
        for conn in tuple(watch.connections):
            # The runtime is gone: nobody will read what is still buffered for it, so it is not waited for.
            conn.close("environment unlistened", discard=True)
        if watch.server is not None:
            await watch.server.wait_closed()
        self.events.emit(EventKind.UNLISTEN, env_id=env_id)

    async def close(self) -> None:
        self._closed = True
        for env_id in tuple(self._watches):
            await self.unlisten(env_id)

    def _watch(self, env_id: str) -> EnvWatch:
        try:
            return self._watches[env_id]
        except KeyError:
            raise ProxyError(f"environment {env_id} has no port on proxy {self.name}: call listen(env) first") from None

    def _accept(self, watch: EnvWatch) -> Side:
        watch.serial += 1
        entries = list(self._entries.values())
        conn = Connection(
            self,
            watch,
            f"{watch.id}#{watch.serial}",
            stream=[e for e in entries if not e.is_connect],
            connect=[e for e in entries if e.is_connect and e.covers(watch.id)],
        )
        watch.connections.add(conn)
        return conn.client

    # ---------------------------------------------------------------------------------------------- toxics
    async def add_toxic(
        self, name: str, toxic: Toxic, direction: Direction = "downstream", env_id: str | None = None
    ) -> None:
        """Apply a toxic to every connection (of ``env_id`` only, if given), the live ones included.

        ``direction``: "downstream" (server → client, default), "upstream" (client → server) or "both".
        Connect toxics (slow_connect, cold_start, limit_connections) act on new connections and ignore it.
        """
        if name in self._entries:
            raise ProxyError(f"toxic {name!r} already exists on proxy {self.name}: remove_toxic() or update_toxic() it")
        entry = ToxicEntry(name, toxic, direction, env_id)
        async with self._manage:
            self._entries[name] = entry
            self.events.emit(EventKind.TOXIC_ADDED, toxic=name, env_id=env_id, direction=direction, detail=repr(toxic))
            if not entry.is_connect:
                for conn in self._live(env_id):
                    for link in conn.links(direction):
                        await link.add(entry)

    async def update_toxic(self, name: str, toxic: Toxic) -> None:
        """New settings for a registered toxic, live connections included (per-connection state is kept)."""
        entry = self._entry(name)
        fresh = ToxicEntry(name, toxic, entry.direction, entry.env_id)
        if fresh.is_connect != entry.is_connect:
            raise ProxyError(f"toxic {name!r} cannot change between a stream and a connect toxic: remove and add it")
        async with self._manage:
            entry.toxic = toxic
            self.events.emit(EventKind.TOXIC_UPDATED, toxic=name, env_id=entry.env_id, detail=repr(toxic))
            if not entry.is_connect:
                for conn in self._live(entry.env_id):
                    for link in conn.links(entry.direction):
                        await link.update(entry)

    async def remove_toxic(self, name: str) -> None:
        """Remove a toxic everywhere; bytes it was holding continue in order, none is lost."""
        entry = self._entry(name)
        async with self._manage:
            del self._entries[name]
            entry.removed.set()
            if not entry.is_connect:
                for conn in self._live(entry.env_id):
                    for link in conn.links(entry.direction):
                        await link.remove(name)
            self.events.emit(EventKind.TOXIC_REMOVED, toxic=name, env_id=entry.env_id)

    def toxics(self) -> list[ToxicInfo]:
        return [entry.info() for entry in self._entries.values()]

    def _entry(self, name: str) -> ToxicEntry:
        try:
            return self._entries[name]
        except KeyError:
            known = ", ".join(self._entries) or "none"
            raise ProxyError(f"no toxic {name!r} on proxy {self.name} (toxics: {known})") from None

    # ------------------------------------------------------------------------------------------ connections
    def connections(self, env_id: str | None = None) -> list[ConnectionInfo]:
        return [conn.info() for conn in self._live(env_id)]

    async def kill_connections(self, env_id: str | None = None, how: End | str | None = None) -> int:
        """Close every live connection (of ``env_id``), as a database killing its sessions would.

        Both sockets are closed with ``how`` ("fin" or "rst"); by default as ``close_mode`` closes (FIN unless
        ``rst``). Returns how many connections were closed.
        """
        end = End(how) if how is not None else None
        conns = self._live(env_id)
        for conn in conns:
            conn.close("killed", how=end)
        await asyncio.gather(*(conn.done.wait() for conn in conns))
        return len(conns)

    def age(self, env_id: str, gap_s: float) -> int:
        """A virtual gap of ``gap_s`` for a frozen environment: what it would have done to its connections
        (``aging``); returns how many were dropped or closed."""
        return age(self._live(env_id), list(self._entries.values()), gap_s, self.server_idle, self.config.outgoing)

    def subscribe(self, subscriber: Subscriber) -> Callable[[], None]:
        """Call ``subscriber`` with every new event record; returns the unsubscribe function."""
        return self.events.subscribe(subscriber)

    def _live(self, env_id: str | None) -> list[Connection]:
        watches = self._watches.values() if env_id is None else [w for w in self._watches.values() if w.id == env_id]
        return [conn for watch in watches for conn in watch.connections if not conn.finished]

    # Connection's Owner protocol.
    def forget(self, conn: Connection) -> None:
        watch = self._watches.get(conn.env_id)
        if watch is not None:
            watch.connections.discard(conn)

    def live_upstreams(self, entry: ToxicEntry, exclude: Connection) -> int:
        return sum(1 for conn in self._live(entry.env_id) if conn is not exclude and conn.holds_upstream)

"""The fault proxy: pass-through, how closes are passed on, every toxic, live changes, the event log, real databases.

Byte-level toxics run against a tiny in-test upstream; close semantics and connect faults also against the real
PostgreSQL and MariaDB. Nothing sleeps to wait for something: tests await the proxy's event records. The few
sleeps that are the scenario itself (time spent idle) say ``# wait-ok``.
"""

from __future__ import annotations

import asyncio
import importlib
import socket
import struct
import threading
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

import pytest
import pytest_asyncio

from conftest import require
from emulator.databases import mysql_dsn, postgres_dsn
from emulator.proxy import (
    Bandwidth,
    ColdStart,
    EventKind,
    IdleDrop,
    Latency,
    LimitConnections,
    Proxy,
    ProxyError,
    ProxyEvent,
    ResetPeer,
    SlowConnect,
    Timeout,
    WhileFrozen,
    make_toxic,
)
from emulator.proxy.view import FreezeListener

PG_DSN = postgres_dsn()
MYSQL_DSN = mysql_dsn()
WAIT_S = 5.0  # bound on any awaited event: a regression fails fast instead of hanging the suite
LINGER_ZERO = struct.pack("ii", 1, 0)


def require_module(name: str) -> Any:
    try:
        return importlib.import_module(name)
    except ImportError:
        require(False, f"{name} is not installed: pip install -e .[test]")


# ------------------------------------------------------------------------------------------------ stand-ins
class StandInEnv:
    """The proxy's view of an execution environment, frozen and thawed by the test instead of the engine."""

    def __init__(self, env_id: str = "env-1"):
        self.id = env_id
        self.frozen = False
        self._listeners: list[FreezeListener] = []

    def add_freeze_listener(self, listener: FreezeListener) -> None:
        self._listeners.append(listener)

    def remove_freeze_listener(self, listener: FreezeListener) -> None:
        self._listeners.remove(listener)

    def freeze(self) -> None:
        self._set(True)

    def thaw(self) -> None:
        self._set(False)

    def _set(self, frozen: bool) -> None:
        self.frozen = frozen
        for listener in tuple(self._listeners):
            listener(frozen)


class Events:
    """Every record a proxy emitted since the test subscribed, and a way to await one that matches."""

    def __init__(self, proxy: Proxy):
        self.seen: list[ProxyEvent] = []
        self._changed = asyncio.Event()
        proxy.subscribe(self._on_event)

    def _on_event(self, event: ProxyEvent) -> None:
        self.seen.append(event)
        self._changed.set()

    def find(self, kind: EventKind, **match: Any) -> list[ProxyEvent]:
        return [e for e in self.seen if e.kind == kind and all(getattr(e, k) == v for k, v in match.items())]

    async def wait(self, kind: EventKind, *, count: int = 1, **match: Any) -> ProxyEvent:
        """The ``count``-th record of ``kind`` whose fields equal ``match``, once it exists."""
        async with asyncio.timeout(WAIT_S):
            while len(found := self.find(kind, **match)) < count:
                self._changed.clear()
                await self._changed.wait()
        return found[count - 1]


class Peer:
    """The upstream's end of one connection: records what it got and how the stream ended."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, echo: bool, close_on_eof: bool):
        self.reader = reader
        self.writer = writer
        self.echo = echo
        self.close_on_eof = close_on_eof
        self.received = bytearray()
        self.ended: asyncio.Future[str] = asyncio.get_running_loop().create_future()
        self._got = asyncio.Event()

    async def run(self) -> None:
        try:
            while data := await self.reader.read(65536):
                self.received += data
                self._got.set()
                if self.echo:
                    self.writer.write(data)
            outcome = "fin"
            if self.close_on_eof:
                self.writer.close()  # as servers do when their client leaves
        except ConnectionResetError:
            outcome = "rst"
        if not self.ended.done():
            self.ended.set_result(outcome)
        self._got.set()

    async def received_at_least(self, nbytes: int) -> bytes:
        async with asyncio.timeout(WAIT_S):
            while len(self.received) < nbytes:
                self._got.clear()
                await self._got.wait()
        return bytes(self.received)

    async def outcome(self) -> str:
        async with asyncio.timeout(WAIT_S):
            return await asyncio.shield(self.ended)

    def push(self, data: bytes) -> None:
        self.writer.write(data)

    def close_fin(self) -> None:
        self.writer.close()

    def close_rst(self) -> None:
        self.writer.get_extra_info("socket").setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, LINGER_ZERO)
        self.writer.transport.abort()


class Upstream:
    """A tiny upstream server: echoes (unless told not to), and lets a test push bytes or close with FIN or RST."""

    def __init__(self, echo: bool = True, close_on_eof: bool = True):
        self.echo = echo
        self.close_on_eof = close_on_eof
        self.peers: list[Peer] = []
        self._accepted: asyncio.Queue[Peer] = asyncio.Queue()
        self._handlers: list[asyncio.Future[None]] = []
        self._server: asyncio.Server | None = None
        self.port = 0

    async def start(self) -> Upstream:
        self._server = await asyncio.start_server(self._handle, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        peer = Peer(reader, writer, self.echo, self.close_on_eof)
        done = asyncio.get_running_loop().create_future()
        self._handlers.append(done)
        self.peers.append(peer)
        self._accepted.put_nowait(peer)
        try:
            await peer.run()
        finally:
            done.set_result(None)

    async def next_peer(self) -> Peer:
        async with asyncio.timeout(WAIT_S):
            return await self._accepted.get()

    async def close(self) -> None:
        for peer in self.peers:
            peer.writer.transport.abort()
        await asyncio.gather(*self._handlers)
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()


class Client:
    """A raw non-blocking socket, so a test can tell data, FIN, RST and *nothing at all* apart in the kernel."""

    def __init__(self, sock: socket.socket):
        self.sock = sock
        self._loop = asyncio.get_running_loop()

    @classmethod
    async def connect(cls, port: int) -> Client:
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setblocking(False)
        try:
            await asyncio.get_running_loop().sock_connect(sock, ("127.0.0.1", port))
        except BaseException:
            sock.close()
            raise
        return cls(sock)

    async def send(self, data: bytes) -> None:
        await self._loop.sock_sendall(self.sock, data)

    async def recv_exactly(self, nbytes: int) -> bytes:
        data = bytearray()
        async with asyncio.timeout(WAIT_S):
            while len(data) < nbytes:
                more = await self._loop.sock_recv(self.sock, nbytes - len(data))
                if not more:
                    raise EOFError(f"EOF after {len(data)} of {nbytes} bytes")
                data += more
        return bytes(data)

    async def outcome(self) -> tuple[str, bytes]:
        """Read to the end of the stream: ("fin" | "rst", the bytes before it)."""
        data = bytearray()
        async with asyncio.timeout(WAIT_S):
            try:
                while more := await self._loop.sock_recv(self.sock, 65536):
                    data += more
            except ConnectionResetError:
                return "rst", bytes(data)
        return "fin", bytes(data)

    def pending(self) -> str:
        """What the kernel holds for us right now: "nothing", "data", "fin" or "rst"."""
        try:
            data = self.sock.recv(1, socket.MSG_PEEK | socket.MSG_DONTWAIT)
        except BlockingIOError:
            return "nothing"
        except ConnectionResetError:
            return "rst"
        return "data" if data else "fin"

    def keepalive(self, every_s: int) -> None:
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPIDLE, every_s)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPINTVL, every_s)

    def shutdown_write(self) -> None:
        self.sock.shutdown(socket.SHUT_WR)

    def reset(self) -> None:
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, LINGER_ZERO)
        self.sock.close()

    def close(self) -> None:
        self.sock.close()


@dataclass
class Rig:
    proxy: Proxy
    env: StandInEnv
    events: Events
    port: int
    upstream: Upstream
    clients: list[Client] = field(default_factory=list)

    async def connect(self, port: int | None = None) -> Client:
        client = await Client.connect(port or self.port)
        self.clients.append(client)
        return client

    async def connected(self) -> tuple[Client, Peer]:
        """A client whose connection reached the upstream, and the upstream's end of it."""
        client = await self.connect()
        return client, await self.upstream.next_peer()


@pytest_asyncio.fixture
async def upstream() -> AsyncIterator[Upstream]:
    server = await Upstream().start()
    yield server
    await server.close()


@pytest_asyncio.fixture
async def make_proxy() -> AsyncIterator[Callable[..., Proxy]]:
    """Factory: ``make_proxy(port, close_mode="fin")``; every proxy it made is closed at teardown."""
    made: list[Proxy] = []

    def factory(port: int, **settings: Any) -> Proxy:
        proxy = Proxy("127.0.0.1", port, **settings)
        made.append(proxy)
        return proxy

    yield factory
    for proxy in made:
        await proxy.close()


async def _rig(upstream: Upstream, make_proxy: Callable[..., Proxy], **settings: Any) -> Rig:
    proxy = make_proxy(upstream.port, **settings)
    events = Events(proxy)
    env = StandInEnv()
    return Rig(proxy, env, events, await proxy.listen(env), upstream)


@pytest_asyncio.fixture
async def rig(upstream: Upstream, make_proxy: Callable[..., Proxy]) -> AsyncIterator[Rig]:
    made = await _rig(upstream, make_proxy)
    yield made
    for client in made.clients:
        client.close()


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


# ---------------------------------------------------------------------------------------------- pass-through
@pytest.mark.asyncio
async def test_bytes_pass_both_ways_and_the_connection_is_logged(rig: Rig) -> None:
    client, peer = await rig.connected()
    await client.send(b"ping")
    assert await client.recv_exactly(4) == b"ping"
    [info] = rig.proxy.connections()
    assert (info.env_id, info.state, info.bytes_up, info.bytes_down) == ("env-1", "open", 4, 4)
    client.close()
    assert await peer.outcome() == "fin"
    closed = await rig.events.wait(EventKind.CLOSED)
    kinds = [e.kind for e in rig.events.seen if e.conn_id == closed.conn_id]
    assert kinds[:2] == [EventKind.CONNECT, EventKind.UPSTREAM]
    assert rig.events.find(EventKind.CLOSE, side="client", by="client", how="fin")
    assert rig.events.find(EventKind.CLOSE, side="upstream", by="proxy", how="fin")
    assert all(e.wall_s > 0 and e.mono_s > 0 and e.env_id == "env-1" for e in rig.events.seen)
    assert rig.proxy.connections() == []


@pytest.mark.asyncio
async def test_each_environment_has_its_own_port_and_env_scoped_toxics_stay_there(rig: Rig) -> None:
    other = StandInEnv("env-2")
    other_port = await rig.proxy.listen(other)
    assert other_port != rig.port and rig.proxy.port("env-2") == other_port
    mine, _ = await rig.connected()
    theirs = await rig.connect(other_port)
    await rig.upstream.next_peer()
    assert sorted(c.env_id for c in rig.proxy.connections()) == ["env-1", "env-2"]
    await rig.proxy.add_toxic("mute", Timeout(timeout_ms=0), direction="upstream", env_id="env-2")
    await theirs.send(b"lost")
    await rig.events.wait(EventKind.DROPPED, env_id="env-2", toxic="mute")
    await mine.send(b"kept")
    assert await mine.recv_exactly(4) == b"kept"
    assert theirs.pending() == "nothing"
    assert {c.env_id: c.toxics_upstream for c in rig.proxy.connections()} == {"env-1": (), "env-2": ("mute",)}


@pytest.mark.asyncio
async def test_a_half_close_from_the_client_keeps_the_other_direction_open(make_proxy: Callable[..., Proxy]) -> None:
    half_open = await Upstream(close_on_eof=False).start()
    rig = await _rig(half_open, make_proxy)
    client, peer = await rig.connected()
    await client.send(b"request")
    client.shutdown_write()
    assert await peer.outcome() == "fin"
    assert peer.received == b"request"
    assert await client.recv_exactly(7) == b"request"  # the echo still comes back over the half-open connection
    peer.push(b"+late")
    peer.close_fin()
    assert await client.outcome() == ("fin", b"+late")
    await rig.events.wait(EventKind.CLOSED)
    client.close()
    await half_open.close()


@pytest.mark.asyncio
async def test_a_slow_reader_pushes_back_on_the_sender_and_no_byte_is_lost(rig: Rig) -> None:
    client, peer = await rig.connected()
    payload = bytes(range(256)) * (32 * 1024)  # 8 MiB: far beyond every socket and transport buffer
    peer.push(payload)
    assert await client.recv_exactly(len(payload)) == payload


@pytest.mark.asyncio
async def test_bytes_held_beyond_the_backlog_limit_pause_the_sender_and_all_arrive_on_thaw(rig: Rig) -> None:
    client, peer = await rig.connected()
    await rig.proxy.add_toxic("frozen", WhileFrozen("hold"))
    rig.env.freeze()
    payload = bytes(range(256)) * (12 * 1024)  # 3 MiB, held: the proxy stops reading the upstream past 1 MiB
    peer.push(payload)
    await rig.events.wait(EventKind.HELD)
    rig.env.thaw()
    assert await client.recv_exactly(len(payload)) == payload


# ------------------------------------------------------------------------------------------------- closing
@pytest.mark.asyncio
@pytest.mark.parametrize(
    ("close_mode", "server_closes", "client_sees"),
    [("mirror", "fin", "fin"), ("mirror", "rst", "rst"), ("fin", "rst", "fin"), ("rst", "fin", "rst")],
)
async def test_an_upstream_close_reaches_the_client_as_close_mode_says(
    upstream: Upstream, make_proxy: Callable[..., Proxy], close_mode: str, server_closes: str, client_sees: str
) -> None:
    rig = await _rig(upstream, make_proxy, close_mode=close_mode)
    client, peer = await rig.connected()
    peer.push(b"last words")
    assert await client.recv_exactly(10) == b"last words"
    peer.close_fin() if server_closes == "fin" else peer.close_rst()
    assert await client.outcome() == (client_sees, b"")
    await rig.events.wait(EventKind.CLOSE, side="upstream", by="upstream", how=server_closes)
    await rig.events.wait(EventKind.CLOSE, side="client", by="proxy", how=client_sees)
    client.close()


@pytest.mark.asyncio
async def test_a_client_reset_reaches_the_upstream_as_a_reset(rig: Rig) -> None:
    client, peer = await rig.connected()
    client.reset()
    assert await peer.outcome() == "rst"
    await rig.events.wait(EventKind.CLOSE, side="upstream", by="proxy", how="rst")


def test_close_semantics_hold_under_uvloop() -> None:
    """The emulator runs on uvloop: a RST must still be detected (ConnectionResetError) and passed on."""
    uvloop = require_module("uvloop")

    async def scenario() -> tuple[tuple[str, bytes], tuple[str, bytes]]:
        server = await Upstream().start()
        proxy = Proxy("127.0.0.1", server.port)
        try:
            port = await proxy.listen(StandInEnv())
            outcomes = []
            for close in (Peer.close_rst, Peer.close_fin):
                client = await Client.connect(port)
                peer = await server.next_peer()
                peer.push(b"x")
                assert await client.recv_exactly(1) == b"x"
                close(peer)
                outcomes.append(await client.outcome())
                client.close()
            return outcomes[0], outcomes[1]
        finally:
            await proxy.close()
            await server.close()

    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        assert runner.run(scenario()) == (("rst", b""), ("fin", b""))


@pytest.mark.asyncio
async def test_kill_connections_closes_one_environments_sessions(rig: Rig) -> None:
    other_port = await rig.proxy.listen(StandInEnv("env-2"))
    mine, my_peer = await rig.connected()
    theirs = await rig.connect(other_port)
    their_peer = await rig.upstream.next_peer()
    assert await rig.proxy.kill_connections("env-1") == 1
    assert await mine.outcome() == ("fin", b"")
    assert await my_peer.outcome() == "fin"
    await theirs.send(b"alive")
    assert await theirs.recv_exactly(5) == b"alive"
    assert await rig.proxy.kill_connections(how="rst") == 1
    assert await theirs.outcome() == ("rst", b"")
    assert await their_peer.outcome() == "rst"


@pytest.mark.asyncio
async def test_an_unreachable_upstream_resets_the_client(make_proxy: Callable[..., Proxy]) -> None:
    proxy = make_proxy(_closed_port())
    events = Events(proxy)
    client = await Client.connect(await proxy.listen(StandInEnv()))
    assert await client.outcome() == ("rst", b"")
    assert ((await events.wait(EventKind.CONNECT_FAILED)).detail or "").startswith("ConnectionRefusedError")
    client.close()


@pytest.mark.asyncio
async def test_unlisten_closes_the_port_and_its_connections(rig: Rig) -> None:
    client, _ = await rig.connected()
    await rig.proxy.unlisten(rig.env)
    assert await client.outcome() == ("fin", b"")
    assert rig.env._listeners == []  # no longer told of freezes
    await rig.events.wait(EventKind.UNLISTEN, env_id="env-1")
    with pytest.raises(ConnectionRefusedError):
        await Client.connect(rig.port)
    with pytest.raises(ProxyError, match="call listen"):
        rig.proxy.port("env-1")


# ------------------------------------------------------------------------------------------ stream toxics
@pytest.mark.asyncio
async def test_latency_counts_from_arrival_so_queued_chunks_are_not_delayed_twice(rig: Rig) -> None:
    client, peer = await rig.connected()
    await rig.proxy.add_toxic("slow", Latency(latency_ms=300))
    pushed_s = time.monotonic()
    peer.push(b"a")
    await asyncio.sleep(0.1)  # wait-ok: the second chunk arrives 100 ms after the first
    peer.push(b"b")
    await client.recv_exactly(1)
    first_s = time.monotonic()
    await client.recv_exactly(1)
    second_s = time.monotonic()
    assert first_s - pushed_s >= 0.3
    # Due 100 ms after the first; a latency that ignored arrival times would deliver it 300 ms after.
    assert 0.03 <= second_s - first_s < 0.25


@pytest.mark.asyncio
async def test_bandwidth_paces_a_direction(rig: Rig) -> None:
    client, peer = await rig.connected()
    await rig.proxy.add_toxic("narrow", Bandwidth(rate_kbps=800))  # 100 kB/s
    started_s = time.monotonic()
    peer.push(b"x" * 20_000)
    await client.recv_exactly(20_000)
    assert 0.19 <= time.monotonic() - started_s < 0.6


@pytest.mark.asyncio
async def test_reset_peer_resets_both_sockets_when_data_next_flows(rig: Rig) -> None:
    client, peer = await rig.connected()
    await rig.proxy.add_toxic("rst", ResetPeer(timeout_ms=50))
    await client.send(b"query")  # echoed: the reply is what triggers the reset, and never arrives
    assert await client.outcome() == ("rst", b"")
    assert await peer.outcome() == "rst"
    fired = await rig.events.wait(EventKind.FIRED, toxic="rst")
    dropped = await rig.events.wait(EventKind.DROPPED, toxic="rst")
    assert dropped.nbytes == 5 and fired.direction == "downstream"
    await rig.events.wait(EventKind.CLOSE, side="client", by="proxy", how="rst", toxic="rst")


@pytest.mark.asyncio
async def test_timeout_drops_bytes_then_closes(rig: Rig) -> None:
    client, peer = await rig.connected()
    added_s = time.monotonic()
    await rig.proxy.add_toxic("stall", Timeout(timeout_ms=150), direction="upstream")
    await client.send(b"never")
    await rig.events.wait(EventKind.DROPPED, toxic="stall", nbytes=5)
    assert await client.outcome() == ("fin", b"")
    assert time.monotonic() - added_s >= 0.15
    assert await peer.outcome() == "fin"
    assert peer.received == b""


@pytest.mark.asyncio
async def test_timeout_zero_never_closes_and_removal_restores_the_flow(rig: Rig) -> None:
    client, peer = await rig.connected()
    await rig.proxy.add_toxic("stall", Timeout(), direction="upstream")
    await client.send(b"lost")
    await rig.events.wait(EventKind.DROPPED, toxic="stall")
    await rig.proxy.remove_toxic("stall")
    await client.send(b"back")
    assert await client.recv_exactly(4) == b"back"
    assert peer.received == b"back"


@pytest.mark.asyncio
async def test_idle_drop_blackholes_an_idle_connection_in_both_directions(rig: Rig) -> None:
    client, peer = await rig.connected()
    await rig.proxy.add_toxic("nat", IdleDrop(idle_s=0.2), direction="both")
    await client.send(b"a")
    assert await client.recv_exactly(1) == b"a"
    fired = await rig.events.wait(EventKind.FIRED, toxic="nat")  # fires once the connection sat idle 0.2 s
    assert "dropped silently" in (fired.detail or "")
    await client.send(b"b")
    await rig.events.wait(EventKind.DROPPED, direction="upstream", nbytes=1)
    peer.push(b"c")
    peer.close_fin()
    await rig.events.wait(EventKind.DROPPED, direction="downstream", how="fin")
    assert peer.received == b"a"
    assert client.pending() == "nothing"  # no byte, no FIN, no RST: the client hangs until its own timeout
    assert [c.state for c in rig.proxy.connections()] == ["dropped"]
    client.close()
    await rig.events.wait(EventKind.CLOSED)


@pytest.mark.asyncio
async def test_idle_drop_counts_tcp_keepalives_as_traffic(rig: Rig) -> None:
    client, _ = await rig.connected()
    client.keepalive(every_s=1)  # probes the kernel answers; the proxy never reads them
    await rig.proxy.add_toxic("nat", IdleDrop(idle_s=1.5), direction="both")
    await asyncio.sleep(2.2)  # wait-ok: idle past idle_s, with a probe every second
    assert not rig.events.find(EventKind.FIRED, toxic="nat")
    await client.send(b"still here")
    assert await client.recv_exactly(10) == b"still here"


@pytest.mark.asyncio
async def test_while_frozen_pass_lets_bytes_reach_a_frozen_environment(rig: Rig) -> None:
    client, peer = await rig.connected()
    await rig.proxy.add_toxic("frozen", WhileFrozen("pass"))
    rig.env.freeze()
    peer.push(b"hello")
    assert await client.recv_exactly(5) == b"hello"


@pytest.mark.asyncio
async def test_while_frozen_hold_delivers_bytes_and_fin_on_thaw(rig: Rig) -> None:
    client, peer = await rig.connected()
    await rig.proxy.add_toxic("frozen", WhileFrozen("hold"))
    rig.env.freeze()
    peer.push(b"hello")
    await rig.events.wait(EventKind.HELD, toxic="frozen", nbytes=5)
    peer.close_fin()
    await rig.events.wait(EventKind.CLOSE, side="upstream", by="upstream", how="fin")
    assert client.pending() == "nothing"
    rig.env.thaw()
    assert await client.outcome() == ("fin", b"hello")
    assert (await rig.events.wait(EventKind.RELEASED, toxic="frozen")).nbytes == 5


@pytest.mark.asyncio
async def test_while_frozen_hold_follows_freezes_told_from_another_thread(rig: Rig) -> None:
    client, peer = await rig.connected()
    await rig.proxy.add_toxic("frozen", WhileFrozen("hold"))
    await asyncio.to_thread(rig.env.freeze)
    peer.push(b"held")
    await rig.events.wait(EventKind.HELD)
    thread = threading.Thread(target=rig.env.thaw)
    thread.start()
    assert await client.recv_exactly(4) == b"held"
    thread.join()


@pytest.mark.asyncio
async def test_removing_a_hold_while_frozen_releases_the_bytes_in_order(rig: Rig) -> None:
    client, peer = await rig.connected()
    await rig.proxy.add_toxic("frozen", WhileFrozen("hold"))
    rig.env.freeze()
    peer.push(b"one,")
    await rig.events.wait(EventKind.HELD)
    peer.push(b"two")
    await rig.events.wait(EventKind.HELD)  # re-held once, proof the second chunk is queued behind
    await rig.proxy.remove_toxic("frozen")
    assert await client.recv_exactly(7) == b"one,two"


@pytest.mark.asyncio
async def test_while_frozen_drop_loses_bytes_and_fin_and_the_connection_stays_dead(rig: Rig) -> None:
    client, peer = await rig.connected()
    await rig.proxy.add_toxic("frozen", WhileFrozen("drop"))
    rig.env.freeze()
    peer.push(b"lost")
    await rig.events.wait(EventKind.DROPPED, toxic="frozen", nbytes=4)
    rig.env.thaw()
    await client.send(b"anyone?")
    await rig.events.wait(EventKind.DROPPED, direction="upstream", nbytes=7)
    peer.close_fin()
    await rig.events.wait(EventKind.DROPPED, how="fin")
    assert client.pending() == "nothing"
    assert peer.received == b""


# -------------------------------------------------------------------------------------- live re-linking
@pytest.mark.asyncio
async def test_toxics_changed_on_a_live_connection_lose_and_reorder_nothing(rig: Rig) -> None:
    client, peer = await rig.connected()
    lines = [f"{i:05d}\n".encode() for i in range(3000)]
    expected = b"".join(lines)
    changes: list[Callable[[], Awaitable[None]]] = [
        lambda: rig.proxy.add_toxic("lat", Latency(latency_ms=2, jitter_ms=2), direction="both"),
        lambda: rig.proxy.add_toxic("bw", Bandwidth(rate_kbps=40_000), direction="both"),
        lambda: rig.proxy.add_toxic("thaw", WhileFrozen("hold")),
        lambda: rig.proxy.update_toxic("lat", Latency(latency_ms=1)),
        lambda: rig.proxy.remove_toxic("lat"),
        lambda: rig.proxy.remove_toxic("thaw"),
        lambda: rig.proxy.remove_toxic("bw"),
    ]

    async def send() -> None:
        for line in lines:
            await client.send(line)

    async def change_while_flowing() -> None:
        for i, change in enumerate(changes, start=1):
            await peer.received_at_least(len(expected) * i // (len(changes) + 2))
            await change()

    sender = asyncio.create_task(send())
    await change_while_flowing()
    echoed = await client.recv_exactly(len(expected))
    await sender
    assert echoed == expected
    assert bytes(peer.received) == expected
    [info] = rig.proxy.connections()
    assert info.toxics_upstream == info.toxics_downstream == ()


@pytest.mark.asyncio
async def test_toxics_apply_to_connections_opened_after_they_were_added(rig: Rig) -> None:
    await rig.proxy.add_toxic("stall", Timeout(), direction="upstream")
    client = await rig.connect()
    await client.send(b"x")
    await rig.events.wait(EventKind.DROPPED, toxic="stall")
    [info] = rig.proxy.connections()
    assert info.toxics_upstream == ("stall",)


# --------------------------------------------------------------------------------------- connect toxics
@pytest.mark.asyncio
async def test_slow_connect_delays_the_upstream_connection(rig: Rig) -> None:
    await rig.proxy.add_toxic("slow", SlowConnect(delay_s=0.2))
    client = await rig.connect()
    await client.send(b"early")  # kept until the upstream connection is made
    connected = await rig.events.wait(EventKind.UPSTREAM)
    accepted = rig.events.find(EventKind.CONNECT)[0]
    assert connected.mono_s - accepted.mono_s >= 0.2
    assert await client.recv_exactly(5) == b"early"


@pytest.mark.asyncio
async def test_a_request_half_closed_while_waiting_to_connect_still_reaches_the_upstream(rig: Rig) -> None:
    await rig.proxy.add_toxic("slow", SlowConnect(delay_s=0.1))
    client = await rig.connect()
    await client.send(b"request")
    client.shutdown_write()
    peer = await rig.upstream.next_peer()
    assert await peer.outcome() == "fin"
    assert peer.received == b"request"
    assert await client.outcome() == ("fin", b"request")


@pytest.mark.asyncio
async def test_a_client_that_resets_while_waiting_to_connect_never_reaches_the_upstream(rig: Rig) -> None:
    await rig.proxy.add_toxic("slow", SlowConnect(delay_s=60))
    client = await rig.connect()
    await rig.events.wait(EventKind.FIRED, toxic="slow")
    client.reset()
    await rig.events.wait(EventKind.CLOSED)
    assert rig.upstream.peers == [] and rig.proxy.connections() == []


@pytest.mark.asyncio
async def test_removing_slow_connect_ends_the_wait(rig: Rig) -> None:
    await rig.proxy.add_toxic("slow", SlowConnect(delay_s=60))
    client = await rig.connect()
    await rig.events.wait(EventKind.FIRED, toxic="slow")
    await rig.proxy.remove_toxic("slow")
    await client.send(b"go")
    assert await client.recv_exactly(2) == b"go"


@pytest.mark.asyncio
async def test_cold_start_wakes_once_for_every_waiting_connection(rig: Rig) -> None:
    await rig.proxy.add_toxic("aurora", ColdStart(delay_s=0.3))
    first = await rig.connect()
    await rig.events.wait(EventKind.FIRED, toxic="aurora")
    second = await rig.connect()
    await rig.events.wait(EventKind.FIRED, toxic="aurora", count=3)  # waking, first waits, second waits
    up = [await rig.events.wait(EventKind.UPSTREAM, count=n) for n in (1, 2)]
    connects = rig.events.find(EventKind.CONNECT)
    assert up[0].mono_s - connects[0].mono_s >= 0.3
    assert abs(up[1].mono_s - up[0].mono_s) < 0.25  # the second waited for the same wake-up, not 0.3 s more
    third = await rig.connect()
    awake = await rig.events.wait(EventKind.UPSTREAM, count=3)
    # Straight through: one that waited for a wake-up of its own would be 0.3 s later.
    assert awake.mono_s - rig.events.find(EventKind.CONNECT)[2].mono_s < 0.25
    for client in (first, second, third):
        await client.send(b"ok")
        assert await client.recv_exactly(2) == b"ok"


@pytest.mark.asyncio
@pytest.mark.parametrize("refuse_with", ["fin", "rst"])
async def test_limit_connections_refuses_beyond_the_limit(rig: Rig, refuse_with: str) -> None:
    first, _ = await rig.connected()
    await rig.proxy.add_toxic("max1", LimitConnections(max_connections=1, refuse_with=refuse_with))  # type: ignore[arg-type]
    refused = await rig.connect()
    assert await refused.outcome() == (refuse_with, b"")
    assert (await rig.events.wait(EventKind.REFUSED, toxic="max1")).how == refuse_with
    assert len(rig.upstream.peers) == 1
    first.close()
    await rig.events.wait(EventKind.CLOSED, count=2)
    later, _ = await rig.connected()
    await later.send(b"in")
    assert await later.recv_exactly(2) == b"in"


# ------------------------------------------------------------------------------------ management, events
@pytest.mark.asyncio
async def test_the_management_api_refuses_misuse_with_a_fix(rig: Rig) -> None:
    await rig.proxy.add_toxic("lat", Latency(latency_ms=1))
    with pytest.raises(ProxyError, match="update_toxic"):
        await rig.proxy.add_toxic("lat", Latency(latency_ms=2))
    with pytest.raises(ProxyError, match="direction must be one of"):
        await rig.proxy.add_toxic("x", Latency(latency_ms=1), direction="sideways")  # type: ignore[arg-type]
    with pytest.raises(ProxyError, match=r"no toxic 'nope'.*lat"):
        await rig.proxy.remove_toxic("nope")
    with pytest.raises(ProxyError, match="remove and add"):
        await rig.proxy.update_toxic("lat", SlowConnect(delay_s=1))
    with pytest.raises(ProxyError, match="already listens"):
        await rig.proxy.listen(rig.env)
    with pytest.raises(ProxyError, match="known toxics"):
        make_toxic("lightning")
    with pytest.raises(ProxyError, match="close_mode must be one of mirror, fin, rst"):
        Proxy("127.0.0.1", rig.upstream.port, close_mode="gentle")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="latency_ms must be >= 0"):
        Latency(latency_ms=-1)
    assert make_toxic("idle_drop", {"idle_s": 350}) == IdleDrop(idle_s=350)
    assert [(t.name, t.direction, t.env_id) for t in rig.proxy.toxics()] == [("lat", "downstream", None)]
    await rig.proxy.remove_toxic("lat")
    assert rig.proxy.toxics() == []


@pytest.mark.asyncio
async def test_the_event_log_is_bounded_and_subscribers_see_every_record(
    upstream: Upstream, make_proxy: Callable[..., Proxy]
) -> None:
    proxy = make_proxy(upstream.port, events_max=3)
    events = Events(proxy)
    seen_by_second: list[ProxyEvent] = []
    unsubscribe = proxy.subscribe(seen_by_second.append)
    for i in range(5):
        await proxy.add_toxic(f"t{i}", Latency(latency_ms=1))
    unsubscribe()
    await proxy.remove_toxic("t0")
    assert [e.toxic for e in proxy.events] == ["t3", "t4", "t0"]
    assert len(events.seen) == 6 and len(seen_by_second) == 5
    assert events.seen[-1].as_dict()["kind"] == EventKind.TOXIC_REMOVED


# ------------------------------------------------------------------------------------- real databases
@pytest_asyncio.fixture
async def pg_proxy(make_proxy: Callable[..., Proxy]) -> AsyncIterator[tuple[Proxy, Events, str]]:
    """A proxy in front of PostgreSQL, one environment listening, and the DSN that goes through it."""
    asyncpg = require_module("asyncpg")
    parts = urlsplit(PG_DSN)
    try:
        conn = await asyncpg.connect(PG_DSN, timeout=5)
    except (OSError, asyncpg.PostgresError, TimeoutError) as exc:
        require(False, f"PostgreSQL at {PG_DSN} ({exc}); set LAMBDA_FREEZE_PG_DSN")
    await conn.close()
    proxy = make_proxy(parts.port or 5432, close_mode="mirror")
    events = Events(proxy)
    port = await proxy.listen(StandInEnv("pg-env"))
    yield proxy, events, parts._replace(netloc=f"{parts.username or 'postgres'}@127.0.0.1:{port}").geturl()


@pytest_asyncio.fixture
async def mysql_rig(make_proxy: Callable[..., Proxy]) -> AsyncIterator[Callable[[str], Awaitable[Any]]]:
    """Factory: ``await connect(close_mode)`` gives an aiomysql connection through a new proxy (and its Events)."""
    aiomysql = require_module("aiomysql")
    parts = urlsplit(MYSQL_DSN)
    settings = {"user": parts.username or "root", "password": parts.password or "", "db": parts.path.lstrip("/")}
    try:
        probe = await aiomysql.connect(host=parts.hostname, port=parts.port or 3306, connect_timeout=5, **settings)
    except Exception as exc:  # aiomysql wraps refusals in pymysql's OperationalError
        require(False, f"MySQL/MariaDB at {MYSQL_DSN} ({exc}); set LAMBDA_FREEZE_MYSQL_DSN")
    probe.close()
    opened: list[Any] = []

    async def connect(close_mode: str) -> tuple[Any, Events]:
        proxy = make_proxy(parts.port or 3306, close_mode=close_mode)
        events = Events(proxy)
        port = await proxy.listen(StandInEnv("mysql-env"))
        conn = await aiomysql.connect(host="127.0.0.1", port=port, **settings)
        opened.append(conn)
        return conn, events

    yield connect
    for conn in opened:
        conn.close()


@pytest.mark.asyncio
@pytest.mark.parametrize(("close_mode", "client_sees"), [("mirror", "rst"), ("fin", "fin")])
async def test_mariadb_wait_timeout_closes_with_a_reset_that_is_passed_on(
    mysql_rig: Callable[[str], Awaitable[Any]], close_mode: str, client_sees: str
) -> None:
    import pymysql

    conn, events = await mysql_rig(close_mode)
    async with conn.cursor() as cur:
        await cur.execute("SET SESSION wait_timeout = 1")  # this session only; MariaDB's minimum is 1 s
    await events.wait(EventKind.CLOSE, side="upstream", by="upstream", how="rst")
    await events.wait(EventKind.CLOSE, side="client", by="proxy", how=client_sees)
    with pytest.raises(pymysql.err.OperationalError) as raised:
        async with conn.cursor() as cur:
            await cur.execute("SELECT 1")
    assert raised.value.args[0] == 2013  # Lost connection to MySQL server during query
    if client_sees == "rst":
        # With a FIN the client's next write meets the closed socket's own RST, so only this case is exact.
        assert "Connection reset by peer" in raised.value.args[1]


@pytest.mark.asyncio
async def test_postgres_idle_session_timeout_closes_with_a_fin_that_is_passed_on(
    pg_proxy: tuple[Proxy, Events, str],
) -> None:
    import asyncpg

    _, events, dsn = pg_proxy
    conn = await asyncpg.connect(dsn)
    try:
        await conn.execute("SET idle_session_timeout = 200")  # this session only
        await events.wait(EventKind.CLOSE, side="upstream", by="upstream", how="fin")
        await events.wait(EventKind.CLOSE, side="client", by="proxy", how="fin")
        await events.wait(EventKind.CLOSE, side="client", by="client")  # asyncpg saw the EOF and closed
        with pytest.raises(asyncpg.InterfaceError, match="connection is closed"):
            await conn.fetchval("SELECT 1")
    finally:
        await conn.close()


@pytest.mark.asyncio
async def test_postgres_behind_a_cold_start_needs_a_connect_timeout_longer_than_the_wake_up(
    pg_proxy: tuple[Proxy, Events, str],
) -> None:
    import asyncpg

    proxy, events, dsn = pg_proxy
    await proxy.add_toxic("aurora", ColdStart(delay_s=0.5))
    with pytest.raises(TimeoutError):
        await asyncpg.connect(dsn, timeout=0.2)
    conn = await asyncpg.connect(dsn, timeout=5)
    try:
        assert await conn.fetchval("SELECT 1") == 1
    finally:
        await conn.close()
    await events.wait(EventKind.UPSTREAM, count=1)


@pytest.mark.asyncio
async def test_postgres_connection_idle_past_idle_drop_hangs_until_the_client_timeout(
    pg_proxy: tuple[Proxy, Events, str],
) -> None:
    import asyncpg

    proxy, events, dsn = pg_proxy
    conn = await asyncpg.connect(dsn)
    try:
        await proxy.add_toxic("nat", IdleDrop(idle_s=0.2), direction="both")
        await events.wait(EventKind.FIRED, toxic="nat")
        with pytest.raises(TimeoutError):
            await conn.fetchval("SELECT 1", timeout=0.3)  # the client's own timeout is the only way out
        await events.wait(EventKind.DROPPED, direction="upstream")
    finally:
        conn.terminate()


@pytest.mark.asyncio
async def test_postgres_refused_beyond_limit_connections(pg_proxy: tuple[Proxy, Events, str]) -> None:
    import asyncpg

    proxy, events, dsn = pg_proxy
    await proxy.add_toxic("max1", LimitConnections(max_connections=1))
    conn = await asyncpg.connect(dsn)
    try:
        with pytest.raises((ConnectionError, asyncpg.ConnectionDoesNotExistError)):
            await asyncpg.connect(dsn, timeout=5)
        await events.wait(EventKind.REFUSED, toxic="max1")
        assert await conn.fetchval("SELECT 1") == 1
    finally:
        await conn.close()

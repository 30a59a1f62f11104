"""A virtual gap ages an environment's proxied connections: a NAT's idle drop, and a server's idle timeout closed
as the real server closes it (PostgreSQL's FATAL 57P05 then FIN, MariaDB's RST), compared with the real servers."""

from __future__ import annotations

import asyncio
import struct
from collections.abc import Callable

import pymysql
import pytest

from conftest import require
from emulator.proxy import IdleDrop, Proxy
from emulator.proxy.aging import ServerIdleTimeout, postgres_idle_session_error

pytestmark = pytest.mark.timeout(60)

WAIT_S = 5.0
PG = ("127.0.0.1", 5432)
MARIADB = ("127.0.0.1", 3306)
READY = b"Z\x00\x00\x00\x05I"


class FrozenEnv:
    """The proxy's view of an environment that stays frozen (the gap is judged while it is)."""

    id = "env-1"
    frozen = True

    def add_freeze_listener(self, listener: Callable[[bool], None]) -> None:
        pass

    def remove_freeze_listener(self, listener: Callable[[bool], None]) -> None:
        pass


async def _connect(host: str, port: int) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    try:
        return await asyncio.open_connection(host, port)
    except OSError as exc:
        require(False, f"the database at {host}:{port} is not reachable: {exc}")
        raise


async def _pg_session(host: str, port: int) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    """A PostgreSQL session (trust, user root, db test), ready for a query."""
    reader, writer = await _connect(host, port)
    body = struct.pack("!i", 196608) + b"user\0root\0database\0test\0\0"
    writer.write(struct.pack("!i", len(body) + 4) + body)
    async with asyncio.timeout(WAIT_S):
        await reader.readuntil(READY)
    return reader, writer


async def _until_closed(reader: asyncio.StreamReader) -> tuple[bytes, str]:
    """Everything the server sends until it closes, and how it closed: "fin" or "rst"."""
    received = b""
    async with asyncio.timeout(WAIT_S):
        while True:
            try:
                data = await reader.read(65536)
            except ConnectionResetError:
                return received, "rst"
            if not data:
                return received, "fin"
            received += data


def _fields(message: bytes) -> dict[str, bytes]:
    assert message[:1] == b"E" and struct.unpack("!i", message[1:5])[0] == len(message) - 1
    return {f[:1].decode(): f[1:] for f in message[5:-2].split(b"\0")}


async def _proxied(upstream: tuple[str, int], server_idle: ServerIdleTimeout | None) -> tuple[Proxy, int]:
    proxy = Proxy(*upstream, name="db")
    proxy.server_idle = server_idle
    return proxy, await proxy.listen(FrozenEnv())


@pytest.mark.asyncio
async def test_postgres_idle_session_close_is_the_real_servers() -> None:
    # The real server, with a short idle_session_timeout: what it sends, and how it closes.
    reader, writer = await _pg_session(*PG)
    query = b"SET idle_session_timeout = 200\0"
    writer.write(b"Q" + struct.pack("!i", len(query) + 4) + query)
    async with asyncio.timeout(WAIT_S):
        await reader.readuntil(READY)
    real, real_end = await _until_closed(reader)
    writer.close()
    # The same session through the proxy, aged by a virtual gap past a declared 15-minute timeout.
    proxy, port = await _proxied(PG, ServerIdleTimeout(900, "postgresql"))
    try:
        reader, writer = await _pg_session("127.0.0.1", port)
        assert proxy.age("env-1", 1800) == 1
        emulated, emulated_end = await _until_closed(reader)
        writer.close()
    finally:
        await proxy.close()
    assert (emulated_end, real_end) == ("fin", "fin")
    assert emulated == postgres_idle_session_error()
    # What drivers read (severity, SQLSTATE, message) is the real server's byte for byte; the source line may
    # differ between PostgreSQL releases.
    real_fields, emulated_fields = _fields(real), _fields(emulated)
    assert {k: v for k, v in emulated_fields.items() if k != "L"} == {k: v for k, v in real_fields.items() if k != "L"}
    assert emulated_fields["C"] == b"57P05"


async def _mariadb_handshake(host: str, port: int) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    reader, writer = await _connect(host, port)
    async with asyncio.timeout(WAIT_S):
        header = await reader.readexactly(4)
        await reader.readexactly(int.from_bytes(header[:3], "little"))  # the server's greeting
    return reader, writer


@pytest.mark.asyncio
async def test_mariadb_idle_close_is_a_reset_like_the_real_servers() -> None:
    try:
        conn = pymysql.connect(host=MARIADB[0], port=MARIADB[1], user="root", database="test")
    except pymysql.err.OperationalError as exc:
        require(False, f"MariaDB is not reachable: {exc}")
    conn.cursor().execute("SET SESSION wait_timeout = 1")
    sock = conn._sock
    sock.settimeout(WAIT_S)
    try:
        real_end = "fin" if sock.recv(65536) == b"" else "data"
    except ConnectionResetError:
        real_end = "rst"
    sock.close()
    proxy, port = await _proxied(MARIADB, ServerIdleTimeout(28800, "mariadb"))
    try:
        reader, writer = await _mariadb_handshake("127.0.0.1", port)
        assert proxy.age("env-1", 28800) == 1
        emulated, emulated_end = await _until_closed(reader)
        writer.close()
    finally:
        await proxy.close()
    assert (emulated, emulated_end, real_end) == (b"", "rst", "rst")


@pytest.mark.asyncio
async def test_idle_drop_drops_a_virtually_idle_connection_and_spares_a_younger_one() -> None:
    proxy, port = await _proxied(PG, ServerIdleTimeout(1800, "postgresql"))
    await proxy.add_toxic("nat", IdleDrop(idle_s=350), direction="both")
    try:
        reader, writer = await _pg_session("127.0.0.1", port)
        assert proxy.age("env-1", 300) == 0  # younger than the NAT's 350 s: still there
        writer.write(b"Q\x00\x00\x00\x0dSELECT 1\0")
        async with asyncio.timeout(WAIT_S):
            await reader.readuntil(READY)
        assert proxy.age("env-1", 400) == 1  # the NAT's timer is shorter than the server's: dropped silently
        writer.write(b"Q\x00\x00\x00\x0dSELECT 1\0")
        # Silence is the behaviour: no answer, no FIN, no RST within a while (the client would wait its timeout).
        with pytest.raises(TimeoutError):
            async with asyncio.timeout(1.0):
                await reader.read(1)
        assert [c.state for c in proxy.connections("env-1")] == ["dropped"]
        writer.close()
    finally:
        await proxy.close()

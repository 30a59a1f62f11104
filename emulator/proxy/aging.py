"""Aging: what a virtual gap of N seconds would have done to an environment's proxied connections.

A virtual freeze lasts milliseconds, so nothing in the network times out on its own; each live connection of the
environment is judged instead, before the thaw, by how long it would have been idle: its real idle time plus the
gap. An ``idle_drop`` toxic (a NAT gateway) drops it silently; a server's declared idle timeout closes it the way
that server closes an idle session, as measured from the real servers:

- PostgreSQL (``idle_session_timeout``): an ErrorResponse ``FATAL 57P05`` to the client, then a FIN.
- MariaDB (``wait_timeout``): a RST, and nothing else.

MySQL 8.0.24 and later send an error packet (``ER_CLIENT_INTERACTION_TIMEOUT``, 4031) before closing; it is not
emulated (a ``mysql`` upstream is closed as MariaDB closes), since only MariaDB could be measured here.

The proxy's own connection to the real server is closed as well, so the server's session ends with it.
"""

from __future__ import annotations

import struct
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal, get_args

from .chunk import Chunk, End
from .errors import ProxyError
from .events import EventKind
from .toxics.idle_drop import IdleDrop

if TYPE_CHECKING:
    from .connection import Connection
    from .registry import ToxicEntry

ServerKind = Literal["postgresql", "mariadb"]
SERVER_KINDS: tuple[str, ...] = get_args(ServerKind)

# PostgreSQL 15's fields, byte for byte as its idle_session_timeout sends them (postgres.c, ProcessInterrupts);
# drivers read the severity, the SQLSTATE and the message.
_POSTGRES_FIELDS = (
    (b"S", b"FATAL"),
    (b"V", b"FATAL"),
    (b"C", b"57P05"),
    (b"M", b"terminating connection due to idle-session timeout"),
    (b"F", b"postgres.c"),
    (b"L", b"3374"),
    (b"R", b"ProcessInterrupts"),
)


def postgres_idle_session_error() -> bytes:
    """The ErrorResponse message PostgreSQL sends before closing an idle session."""
    body = b"".join(code + value + b"\0" for code, value in _POSTGRES_FIELDS) + b"\0"
    return b"E" + struct.pack("!i", len(body) + 4) + body


@dataclass(frozen=True, slots=True)
class ServerIdleTimeout:
    """An upstream server's idle timeout: a session idle ``timeout_s`` is closed as ``server`` closes it."""

    timeout_s: float
    server: ServerKind

    def __post_init__(self) -> None:
        if self.timeout_s <= 0:
            raise ProxyError(f"server_idle_timeout must be > 0 seconds, not {self.timeout_s!r}")
        if self.server not in SERVER_KINDS:
            known = ", ".join(SERVER_KINDS)
            raise ProxyError(f"server_idle_timeout: server must be one of {known}, not {self.server!r}")

    def close(self, conn: Connection, idle_s: float, outgoing: Callable[[End], End]) -> None:
        """Close ``conn`` as the server would; ``outgoing`` is the proxy's close_mode (a RST may become a FIN)."""
        reason = f"virtually idle {idle_s:.3f} s >= server idle timeout {self.timeout_s:g} s"
        conn.emit(EventKind.FIRED, toxic="server_idle_timeout", detail=reason)
        if self.server == "mariadb" and outgoing(End.RST) is End.RST:
            conn.reset(reason, toxic="server_idle_timeout")
            return
        # The real session ends; the client gets what the server sends, down through the toxics like any answer.
        conn.upstream.close(End.FIN)
        now = time.monotonic()
        if self.server == "postgresql":
            conn.down.feed(Chunk(postgres_idle_session_error(), now))
        conn.down.feed(Chunk(b"", now, End.FIN))


def _idle_drops(entries: list[ToxicEntry], env_id: str) -> list[tuple[str, IdleDrop]]:
    return [(e.name, e.toxic) for e in entries if isinstance(e.toxic, IdleDrop) and e.covers(env_id)]


def age(
    conns: list[Connection],
    entries: list[ToxicEntry],
    gap_s: float,
    server_idle: ServerIdleTimeout | None,
    outgoing: Callable[[End], End],
) -> int:
    """Judge each connection by its idle time plus ``gap_s``; returns how many were dropped or closed."""
    now = time.monotonic()
    acted = 0
    for conn in conns:
        if conn.finished or conn.blackholed or conn.pending is not None:
            continue
        idle_s = now - conn.last_activity_s + gap_s
        drops = sorted((t.idle_s, name) for name, t in _idle_drops(entries, conn.env_id) if idle_s >= t.idle_s)
        # A NAT that forgot the flow first hides the server's close from the client too: the shorter timer wins.
        if drops and (server_idle is None or drops[0][0] < server_idle.timeout_s):
            detail = f"virtually idle {idle_s:.3f} s > idle_s {drops[0][0]:g}: dropped silently"
            conn.emit(EventKind.FIRED, toxic=drops[0][1], detail=detail)
            conn.blackhole("virtual gap", toxic=drops[0][1])
            acted += 1
        elif server_idle is not None and idle_s >= server_idle.timeout_s:
            server_idle.close(conn, idle_s, outgoing)
            acted += 1
    return acted

"""``limit_connections``: at most max_connections concurrent upstream connections; the next ones are refused."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, ClassVar, Literal

from ..chunk import End
from .base import ConnectToxic, Refused

if TYPE_CHECKING:
    from ..attempt import ConnectAttempt


@dataclass(frozen=True, slots=True)
class LimitConnections(ConnectToxic):
    """A refused client is accepted and then closed at once, before any byte is exchanged.

    ``fin`` (default) is how PostgreSQL and MariaDB refuse: they accept the TCP connection, send their "too many
    connections" error (53300 / 1040) and close it gracefully. A protocol-agnostic proxy cannot write that error,
    so the client sees its handshake cut by an end of stream, the same failure class (connection lost during
    startup). ``rst`` resets instead (ECONNRESET), like a host that aborts connections it cannot serve. Refusing
    the SYN itself (ECONNREFUSED) is impossible once the environment's port is listening for the others.
    Connections open before the toxic was added count towards the limit; refused ones never reach the upstream.
    """

    kind: ClassVar[str] = "limit_connections"
    max_connections: int
    refuse_with: Literal["fin", "rst"] = "fin"

    def __post_init__(self) -> None:
        if self.max_connections < 0:
            raise ValueError(f"LimitConnections.max_connections must be >= 0, not {self.max_connections!r}")
        if self.refuse_with not in ("fin", "rst"):
            raise ValueError(f"LimitConnections.refuse_with must be 'fin' or 'rst', not {self.refuse_with!r}")

    async def admit(self, attempt: ConnectAttempt) -> None:
        open_now = attempt.open_connections()
        if open_now >= self.max_connections:
            raise Refused(End(self.refuse_with), f"{open_now} of {self.max_connections} connections open")
        attempt.reserve()

"""A proxy's settings: the upstream it fronts and how it closes connections."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, get_args

from .chunk import End
from .errors import ProxyError
from .events import EVENTS_MAX

CloseMode = Literal["mirror", "fin", "rst"]
CLOSE_MODES: tuple[str, ...] = get_args(CloseMode)


@dataclass(frozen=True, slots=True)
class ProxyConfig:
    """``close_mode`` decides what a close on one side becomes on the other.

    ``mirror`` (default): a RST stays a RST (SO_LINGER 0), a FIN stays a FIN (half-close) — MariaDB's
    ``wait_timeout`` close reaches the client as ECONNRESET, PostgreSQL's ``idle_session_timeout`` as an EOF.
    ``fin``: every close becomes a FIN (what a naive stream-based proxy does). ``rst``: every close becomes a RST.
    """

    upstream_host: str
    upstream_port: int
    name: str = ""  # defaults to "host:port"
    listen_host: str = "127.0.0.1"
    close_mode: CloseMode = "mirror"
    events_max: int = EVENTS_MAX

    def __post_init__(self) -> None:
        if self.close_mode not in CLOSE_MODES:
            raise ProxyError(f"close_mode must be one of {', '.join(CLOSE_MODES)}, not {self.close_mode!r}")
        if not 0 < self.upstream_port < 65536:
            raise ProxyError(f"upstream_port must be a TCP port (1-65535), not {self.upstream_port!r}")
        if not self.name:
            object.__setattr__(self, "name", f"{self.upstream_host}:{self.upstream_port}")

    def outgoing(self, end: End) -> End:
        """How the proxy closes a socket because the stream towards it ended with ``end``."""
        if self.close_mode == "fin":
            return End.FIN
        if self.close_mode == "rst":
            return End.RST
        return end

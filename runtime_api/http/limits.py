"""The HTTP layer's bounds and timeouts, and the server as its connections see it (below both, so neither imports
the other)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

from .message import Handler, Response

MAX_HEAD_BYTES = 64 * 1024  # request line plus header fields, on the wire (and, separately, the trailer section)
MAX_LINE_BYTES = 16 * 1024  # the request target, one header field (name and value), one trailer field
MAX_PIPELINED = 16  # requests read ahead on one connection while an earlier one is being answered
MAX_READ_AHEAD_BYTES = 1024 * 1024  # body bytes of requests read ahead, beyond which the connection stops reading


@dataclass(frozen=True, slots=True)
class HttpLimits:
    """Bounds and timeouts of one server. A timeout of None is off.

    The defaults sit where mature servers put theirs: nginx's ``client_header_timeout`` and ``client_body_timeout``
    are 60 s, its ``keepalive_timeout`` 75 s; Apache reads a head within 20-40 s. A request waiting for its answer is
    never timed out (a runtime's ``next`` long-poll waits as long as its environment is frozen).
    """

    header_timeout_s: float | None = 30.0  # from the first byte of a request head to its end
    idle_timeout_s: float | None = 75.0  # a kept-alive connection with no request
    body_timeout_s: float | None = 60.0  # between two pieces of a request body
    max_connections: int = 1000  # beyond: 503 with Connection: close
    max_head_bytes: int = MAX_HEAD_BYTES
    max_line_bytes: int = MAX_LINE_BYTES

    def sweep_interval_s(self) -> float:
        """How often the timeouts are checked: a fraction of the shortest, between 50 ms and 1 s."""
        timeouts = [t for t in (self.header_timeout_s, self.idle_timeout_s, self.body_timeout_s) if t is not None]
        return min(1.0, max(0.05, min(timeouts, default=1.0) / 4))


class Connection(Protocol):
    """A connection as its server sweeps and closes it."""

    deadline: float  # loop time at which the connection has waited too long for its client; 0: no deadline
    local_port: int
    task: asyncio.Task[None] | None

    def waiting_for_client(self) -> bool: ...

    def time_out(self) -> None: ...

    def close_when_idle(self) -> None: ...

    def abort(self) -> None: ...


class ServerSide(Protocol):
    """What a connection needs from its server: the handler, the bounds, and a place in the connection count.

    ``admit(connection)`` is asked once, when a connection is made: None lets it in, else the response it gets
    before it is closed (a full server, a stranger to a private endpoint).
    """

    dispatch: Handler
    max_body: int
    limits: HttpLimits
    closing: bool
    error_response: Callable[[int, str], Response]

    def admit(self, connection: Connection, peer: object, sockname: object) -> Response | None: ...


    def gone(self, connection: Connection) -> None: ...

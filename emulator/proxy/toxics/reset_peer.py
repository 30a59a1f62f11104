"""``reset_peer``: when data next flows, wait timeout_ms, then reset the connection with a real TCP RST."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, ClassVar

from .base import StreamToxic, check_non_negative

if TYPE_CHECKING:
    from ..stub import ToxicStub


@dataclass(frozen=True, slots=True)
class ResetPeer(StreamToxic):
    """As toxiproxy's ``reset_peer``: triggered by the first chunk in its direction, which never arrives.

    Both sockets are closed with SO_LINGER 0, so the client (and the server) get ECONNRESET, not an EOF.
    A FIN or RST that comes first is passed on: the connection is ending anyway.
    """

    kind: ClassVar[str] = "reset_peer"
    timeout_ms: float = 0.0

    def __post_init__(self) -> None:
        check_non_negative(self, timeout_ms=self.timeout_ms)

    async def pipe(self, stub: ToxicStub) -> None:
        while (chunk := await stub.read()) is not None:
            if chunk.end is not None:
                stub.write(chunk)
                continue
            if not await stub.sleep_until(chunk.arrived_s + self.timeout_ms / 1000.0):
                stub.unread(chunk)  # removed before it fired: the chunk is delivered after all
                return
            stub.fired(f"reset after {self.timeout_ms:g} ms", nbytes=len(chunk.data))
            stub.drop(chunk, "reset_peer")
            stub.reset("reset_peer")
            return

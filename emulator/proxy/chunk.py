"""What flows through a toxic chain: bytes stamped with their arrival time, or the end of the stream."""

from __future__ import annotations

import enum
from dataclasses import dataclass


class End(enum.Enum):
    """How a TCP stream ends: a FIN (orderly, half-close) or a RST (abortive)."""

    FIN = "fin"
    RST = "rst"


@dataclass(frozen=True, slots=True)
class Chunk:
    """Bytes read from one socket, or (``end`` set, ``data`` empty) the peer's FIN or RST.

    ``arrived_s`` is the ``time.monotonic()`` at which the proxy read them, so a toxic that delays a chunk
    subtracts the time it already spent queued behind earlier chunks or earlier toxics.
    """

    data: bytes
    arrived_s: float
    end: End | None = None

    def __len__(self) -> int:
        return len(self.data)

    def describe(self) -> str:
        return f"{self.end.value.upper()}" if self.end else f"{len(self.data)} bytes"

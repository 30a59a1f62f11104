"""``timeout``: stop forwarding (bytes are dropped), and close the connection after timeout_ms, or never when 0."""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, ClassVar

from .base import StreamToxic, check_non_negative

if TYPE_CHECKING:
    from ..stub import ToxicStub


class _Started:
    __slots__ = ("at_s",)

    def __init__(self) -> None:
        self.at_s: float | None = None


@dataclass(frozen=True, slots=True)
class Timeout(StreamToxic):
    """As toxiproxy's ``timeout``. The clock starts when the toxic starts on the connection and survives re-links.

    A peer's own FIN or RST still passes: closing is not forwarding data, and a server that goes away is seen.
    """

    kind: ClassVar[str] = "timeout"
    timeout_ms: float = 0.0

    def __post_init__(self) -> None:
        check_non_negative(self, timeout_ms=self.timeout_ms)

    def new_state(self) -> _Started:
        return _Started()

    async def pipe(self, stub: ToxicStub) -> None:
        started: _Started = stub.state
        if started.at_s is None:
            started.at_s = time.monotonic()
        deadline_s = started.at_s + self.timeout_ms / 1000.0 if self.timeout_ms else None
        while True:
            chunk = await stub.read(until_s=deadline_s)
            if chunk is None:
                if stub.interrupted:
                    return
                stub.fired(f"closed after {self.timeout_ms:g} ms")
                stub.close("timeout")
                return
            if chunk.end is not None:
                stub.write(chunk)
            else:
                stub.drop(chunk, "timeout")

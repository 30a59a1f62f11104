"""``latency``: every chunk (and FIN/RST) is delivered latency_ms ± jitter_ms after it arrived at the proxy."""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import TYPE_CHECKING, ClassVar

from .base import StreamToxic, check_non_negative

if TYPE_CHECKING:
    from ..stub import ToxicStub


@dataclass(frozen=True, slots=True)
class Latency(StreamToxic):
    kind: ClassVar[str] = "latency"
    latency_ms: float
    jitter_ms: float = 0.0  # uniform in [-jitter_ms, +jitter_ms], never below zero in total

    def __post_init__(self) -> None:
        check_non_negative(self, latency_ms=self.latency_ms, jitter_ms=self.jitter_ms)

    def delay_s(self) -> float:
        jitter_ms = random.uniform(-self.jitter_ms, self.jitter_ms) if self.jitter_ms else 0.0
        return max(0.0, self.latency_ms + jitter_ms) / 1000.0

    async def pipe(self, stub: ToxicStub) -> None:
        while (chunk := await stub.read()) is not None:
            # Measured from arrival, not from now: time spent queued behind earlier chunks is not added again,
            # and chunks stay in order (a chunk due earlier than its predecessor goes right after it).
            if not await stub.sleep_until(chunk.arrived_s + self.delay_s()):
                stub.unread(chunk)
                return
            stub.write(chunk)

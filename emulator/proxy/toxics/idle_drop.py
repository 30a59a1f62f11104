"""``idle_drop``: a connection idle longer than idle_s is silently dropped, as NAT gateways and Lambda's network do.

No FIN, no RST: from then on every byte in both directions vanishes, so the client hangs until its own timeout
(through a proxy there is no ETIMEDOUT: the proxy's kernel keeps ACKing). Idle means no packet at all: data in
either direction, and also TCP keepalive probes, which the kernel answers without the proxy seeing them, so they
are counted from the sockets' segment counters, sampled a few times per ``idle_s``.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, ClassVar

from .base import StreamToxic

if TYPE_CHECKING:
    from ..stub import ToxicStub

SAMPLES_PER_IDLE = 8  # keepalive sampling: a probe is noticed at most idle_s / 8 late
SAMPLE_MAX_S = 1.0


class _Packets:
    __slots__ = ("dropped", "seen_at_s", "segments")

    def __init__(self) -> None:
        self.segments: int | None = None  # the sockets' segment count when last sampled
        self.seen_at_s = 0.0  # monotonic time a packet was last noticed that way
        self.dropped = False


@dataclass(frozen=True, slots=True)
class IdleDrop(StreamToxic):
    kind: ClassVar[str] = "idle_drop"
    idle_s: float
    count_keepalives: bool = True  # False: only data counts, as behind a middlebox that ignores probes

    def __post_init__(self) -> None:
        if self.idle_s <= 0:
            raise ValueError(f"IdleDrop.idle_s must be > 0, not {self.idle_s!r}")

    def new_state(self) -> _Packets:
        return _Packets()

    def _last_packet_s(self, stub: ToxicStub, packets: _Packets) -> float:
        if self.count_keepalives:
            segments = stub.segments_in()
            if segments is not None and segments != packets.segments:
                if packets.segments is not None:
                    packets.seen_at_s = time.monotonic()
                packets.segments = segments
        return max(stub.last_activity_s, packets.seen_at_s)

    async def pipe(self, stub: ToxicStub) -> None:
        packets: _Packets = stub.state
        sample_s = min(self.idle_s / SAMPLES_PER_IDLE, SAMPLE_MAX_S) if self.count_keepalives else None
        self._last_packet_s(stub, packets)
        while True:
            if packets.dropped:
                chunk = await stub.read()  # the connection is a blackhole: the sink discards whatever was queued
            else:
                deadline_s = self._last_packet_s(stub, packets) + self.idle_s
                if sample_s is not None:
                    deadline_s = min(deadline_s, time.monotonic() + sample_s)
                chunk = await stub.read(until_s=deadline_s)
            if chunk is not None:
                stub.write(chunk)
                continue
            if stub.interrupted:
                return
            idle_s = time.monotonic() - self._last_packet_s(stub, packets)
            if idle_s >= self.idle_s:
                packets.dropped = True
                stub.fired(f"idle {idle_s:.3f} s > idle_s {self.idle_s:g}: dropped silently")
                stub.blackhole("idle_drop")

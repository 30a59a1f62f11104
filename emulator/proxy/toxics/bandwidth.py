"""``bandwidth``: a direction limited to rate_kbps kilobits per second (toxiproxy's ``rate`` is KB/s: ×8 here)."""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, ClassVar

from .base import StreamToxic

if TYPE_CHECKING:
    from ..stub import ToxicStub

SLICE_S = 0.1  # bytes go out in slices of 100 ms worth, so a big chunk trickles instead of arriving late at once


class _Pacing:
    __slots__ = ("free_s",)

    def __init__(self) -> None:
        self.free_s = 0.0  # monotonic time at which the emulated link is done sending what it was given


@dataclass(frozen=True, slots=True)
class Bandwidth(StreamToxic):
    kind: ClassVar[str] = "bandwidth"
    rate_kbps: float  # 1 kbps = 1000 bits/s = 125 bytes/s

    def __post_init__(self) -> None:
        if self.rate_kbps <= 0:
            raise ValueError(f"Bandwidth.rate_kbps must be > 0, not {self.rate_kbps!r} (use timeout to stop traffic)")

    @property
    def bytes_per_s(self) -> float:
        return self.rate_kbps * 125.0

    def new_state(self) -> _Pacing:
        return _Pacing()

    async def pipe(self, stub: ToxicStub) -> None:
        pacing: _Pacing = stub.state
        slice_bytes = max(1, int(self.bytes_per_s * SLICE_S))
        while (chunk := await stub.read()) is not None:
            if chunk.end is not None:
                # A FIN/RST queues behind the bytes before it, and takes no time itself.
                if not await stub.sleep_until(pacing.free_s):
                    stub.unread(chunk)
                    return
                stub.write(chunk)
                continue
            data = chunk.data
            # The link starts on a chunk when it arrived or when it finished the previous one, whichever is later.
            pacing.free_s = max(pacing.free_s, chunk.arrived_s)
            while data:
                piece, data = data[:slice_bytes], data[slice_bytes:]
                due_s = pacing.free_s + len(piece) / self.bytes_per_s
                if not await stub.sleep_until(due_s):
                    stub.unread(replace(chunk, data=piece + data))
                    return
                pacing.free_s = due_s
                stub.write(replace(chunk, data=piece))

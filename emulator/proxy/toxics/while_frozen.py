"""``while_frozen``: what the network does to the connections of a frozen environment.

``pass``: nothing (the kernel still takes packets for a cgroup-frozen process; the client reads them on thaw).
``hold``: bytes (and a FIN/RST) are held while frozen and delivered on thaw, as for a paused VM.
``drop``: bytes and the FIN are lost while frozen; the first loss kills the connection silently (no FIN, no RST).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, ClassVar, Literal

from ..events import EventKind
from .base import StreamToxic

if TYPE_CHECKING:
    from ..stub import ToxicStub

Mode = Literal["pass", "hold", "drop"]
MODES: tuple[str, ...] = ("pass", "hold", "drop")


@dataclass(frozen=True, slots=True)
class WhileFrozen(StreamToxic):
    kind: ClassVar[str] = "while_frozen"
    mode: Mode = "pass"

    def __post_init__(self) -> None:
        if self.mode not in MODES:
            raise ValueError(f"WhileFrozen.mode must be one of {', '.join(MODES)}, not {self.mode!r}")

    async def pipe(self, stub: ToxicStub) -> None:
        while (chunk := await stub.read()) is not None:
            if self.mode == "pass" or not stub.frozen:
                stub.write(chunk)
            elif self.mode == "hold":
                stub.emit(EventKind.HELD, nbytes=len(chunk.data), detail=chunk.describe())
                # Later chunks wait in the input queue behind this one: order is kept without a second buffer.
                if not await stub.until_thawed():
                    stub.unread(chunk)  # re-linked or removed while frozen: held again, or flushed on removal
                    return
                stub.emit(EventKind.RELEASED, nbytes=len(chunk.data) + stub.queued_bytes, detail="thawed")
                stub.write(chunk)
            else:
                stub.fired(f"{chunk.describe()} lost while frozen: connection dropped", nbytes=len(chunk.data))
                stub.drop(chunk, "while_frozen=drop")
                stub.blackhole("while_frozen=drop")

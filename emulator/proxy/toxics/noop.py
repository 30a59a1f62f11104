"""The toxic that does nothing: the head of every chain, so toxics can be added behind it on live connections."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, ClassVar

from .base import StreamToxic

if TYPE_CHECKING:
    from ..stub import ToxicStub


@dataclass(frozen=True, slots=True)
class Noop(StreamToxic):
    kind: ClassVar[str] = "noop"

    async def pipe(self, stub: ToxicStub) -> None:
        while (chunk := await stub.read()) is not None:
            stub.write(chunk)

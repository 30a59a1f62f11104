"""Toxics as registered on a proxy: a name, the settings, the direction and environment they apply to."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Any, Literal, get_args

from .errors import ProxyError
from .toxics.base import ConnectToxic, StreamToxic, Toxic

Direction = Literal["upstream", "downstream", "both"]
DIRECTIONS: tuple[str, ...] = get_args(Direction)


@dataclass(frozen=True, slots=True)
class ToxicInfo:
    """What ``Proxy.toxics()`` lists."""

    name: str
    toxic: Toxic
    direction: str  # ignored by connect toxics (slow_connect, cold_start, limit_connections)
    env_id: str | None  # None: every environment's connections


class ToxicEntry:
    """One registered toxic. ``shared`` is state common to all its connections (a cold start's wake-up time)."""

    def __init__(self, name: str, toxic: Toxic, direction: str, env_id: str | None):
        if not name:
            raise ProxyError("a toxic needs a non-empty name: it is how remove_toxic() finds it")
        if not isinstance(toxic, StreamToxic | ConnectToxic):
            raise ProxyError(
                f"{toxic!r} is not a toxic: use one of the classes in emulator.proxy.toxics "
                "(or subclass StreamToxic / ConnectToxic)"
            )
        if direction not in DIRECTIONS:
            raise ProxyError(f"direction must be one of {', '.join(DIRECTIONS)}, not {direction!r}")
        self.name = name
        self.toxic = toxic
        self.direction = direction
        self.env_id = env_id
        self.shared: dict[str, Any] = {}
        self.removed = asyncio.Event()

    @property
    def is_connect(self) -> bool:
        return isinstance(self.toxic, ConnectToxic)

    @property
    def stream_toxic(self) -> StreamToxic:
        assert isinstance(self.toxic, StreamToxic)
        return self.toxic

    @property
    def connect_toxic(self) -> ConnectToxic:
        assert isinstance(self.toxic, ConnectToxic)
        return self.toxic

    def covers(self, env_id: str) -> bool:
        return self.env_id is None or self.env_id == env_id

    def applies(self, env_id: str, direction: str) -> bool:
        return not self.is_connect and self.covers(env_id) and self.direction in (direction, "both")

    def directions(self) -> tuple[str, ...]:
        return ("upstream", "downstream") if self.direction == "both" else (self.direction,)

    def info(self) -> ToxicInfo:
        return ToxicInfo(self.name, self.toxic, self.direction, self.env_id)

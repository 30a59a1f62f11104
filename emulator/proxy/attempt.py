"""A client connection waiting to be let through to the upstream: what a connect toxic may see and do."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable
from typing import Any, Protocol

from .events import EventKind


class AttemptConnection(Protocol):
    """What an attempt asks of the connection it lets through (``Connection``)."""

    id: str
    env_id: str
    reserved: bool

    def emit(self, kind: EventKind, **fields: object) -> None: ...


class AttemptEntry(Protocol):
    """The registered connect toxic that decides (``registry.ToxicEntry``)."""

    name: str
    shared: dict[str, Any]
    removed: asyncio.Event


class ConnectAttempt:
    def __init__(self, conn: AttemptConnection, entry: AttemptEntry, live_upstreams: Callable[[], int]):
        self._conn = conn
        self._entry = entry
        self._live_upstreams = live_upstreams  # the proxy's count, this connection excluded

    @property
    def conn_id(self) -> str:
        return self._conn.id

    @property
    def env_id(self) -> str:
        return self._conn.env_id

    @property
    def shared(self) -> dict[str, Any]:
        """State shared by every connection this toxic sees (lives as long as the toxic is registered)."""
        return self._entry.shared

    def open_connections(self) -> int:
        """Other live connections in this toxic's scope that hold, or are about to hold, an upstream connection."""
        return self._live_upstreams()

    def reserve(self) -> None:
        """Count this connection as an upstream connection from now on, before it is actually made."""
        self._conn.reserved = True

    async def sleep_until(self, until_s: float) -> bool:
        """Wait for a monotonic time; False if the toxic was removed first (then the wait is over)."""
        remaining = until_s - time.monotonic()
        if remaining <= 0 or self._entry.removed.is_set():
            return not self._entry.removed.is_set()
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(remaining):
                await self._entry.removed.wait()
        return not self._entry.removed.is_set()

    def fired(self, detail: str) -> None:
        self._conn.emit(EventKind.FIRED, toxic=self._entry.name, detail=detail)

"""A client connection waiting to be let through to the upstream: what a connect toxic may see and do."""

from __future__ import annotations

import asyncio
import contextlib
import time
from typing import TYPE_CHECKING, Any

from .events import EventKind

if TYPE_CHECKING:
    from .connection import Connection
    from .registry import ToxicEntry


class ConnectAttempt:
    def __init__(self, conn: Connection, entry: ToxicEntry):
        self._conn = conn
        self._entry = entry

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
        return self._conn.proxy_live_upstreams(self._entry, exclude=self._conn)

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

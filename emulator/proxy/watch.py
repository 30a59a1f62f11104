"""One environment as the proxy follows it: its listening socket, whether it is frozen, its live connections."""

from __future__ import annotations

import asyncio
import threading
from typing import TYPE_CHECKING

from .view import EnvironmentView

if TYPE_CHECKING:
    from .connection import Connection


class EnvWatch:
    def __init__(self, view: EnvironmentView):
        self.view = view
        self.id = view.id
        self.frozen = bool(view.frozen)
        self.connections: set[Connection] = set()
        self.server: asyncio.Server | None = None
        self.port = 0
        self.serial = 0  # numbers this environment's connections
        self._loop = asyncio.get_running_loop()
        self._thread = threading.get_ident()
        view.add_freeze_listener(self.on_freeze)

    def on_freeze(self, frozen: bool) -> None:
        """The environment's freeze listener."""
        if threading.get_ident() != self._thread:
            self._loop.call_soon_threadsafe(self._apply, frozen)
        else:
            self._apply(frozen)

    def _apply(self, frozen: bool) -> None:
        if frozen == self.frozen:
            return
        self.frozen = frozen
        # Toxics waiting on the freeze state (while_frozen) re-check it now.
        for conn in tuple(self.connections):
            conn.wake_stubs()

    def detach(self) -> None:
        self.view.remove_freeze_listener(self.on_freeze)

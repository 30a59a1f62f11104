"""The deadline of an environment's INIT or of its invocation: one timer, armed for each, cancelled when it ends."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable


class Deadline:
    def __init__(self, loop: asyncio.AbstractEventLoop):
        self._loop = loop
        self._timer: asyncio.TimerHandle | None = None

    def arm(self, deadline_s: float | None, on_expiry: Callable[[], None]) -> None:
        """``on_expiry`` runs at ``deadline_s`` (monotonic) unless the deadline is re-armed or cancelled first."""
        self.cancel()
        if deadline_s is not None:
            self._schedule(deadline_s, on_expiry)

    def _schedule(self, deadline_s: float, on_expiry: Callable[[], None]) -> None:
        delay = max(0.0, deadline_s - time.monotonic())
        self._timer = self._loop.call_later(delay, self._expire, deadline_s, on_expiry)

    def _expire(self, deadline_s: float, on_expiry: Callable[[], None]) -> None:
        # The loop's timers may fire up to a millisecond early (libuv counts whole milliseconds from the time it
        # cached at the start of an iteration): a deadline never ends anything before it has passed.
        if time.monotonic() < deadline_s:
            self._schedule(deadline_s, on_expiry)
            return
        self._timer = None
        on_expiry()

    def cancel(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

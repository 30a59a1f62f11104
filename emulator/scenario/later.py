"""Invoke steps with ``at``: each on a thread of its own, started that many seconds after the run began (and not
before the invocation its ``after`` names has returned), so that the steps after it go on at once; joined by the
``expect`` on it, a ``stay_frozen``, and the end of the run."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable


class Later:
    """The run's invocations started at an offset. ``stop()`` (a run that stops early) keeps those whose time has not
    come from starting; the ones under way finish."""

    def __init__(self) -> None:
        self.origin = time.monotonic()  # when the run's first step started: what ``at`` counts from
        self._threads: dict[str, threading.Thread] = {}
        self._stopping = threading.Event()
        self.last_returned = 0.0  # when the last of them returned (monotonic): a ``stay_frozen`` counts from then

    def begin(self) -> None:
        self.origin = time.monotonic()

    def start(self, key: str, at_s: float, after: str | None, work: Callable[[], None]) -> None:
        """Run ``work`` at ``origin + at_s`` (or once ``after`` has returned, whichever is later)."""
        waits_for = self._threads.get(after) if after else None

        def run() -> None:
            if waits_for is not None:
                waits_for.join()
            delay = self.origin + at_s - time.monotonic()
            if self._stopping.wait(delay) if delay > 0 else self._stopping.is_set():
                return  # the run stopped before its time
            work()
            self.last_returned = max(self.last_returned, time.monotonic())

        thread = threading.Thread(target=run, name=f"lambda-freeze {key}", daemon=True)
        self._threads[key] = thread
        thread.start()

    def join(self, keys: Iterable[str] | None = None) -> None:
        """Until the invocations under these keys (default: all) have returned, or will never start."""
        for key in list(self._threads) if keys is None else keys:
            if key in self._threads:
                self._threads[key].join()

    def stop(self) -> None:
        self._stopping.set()

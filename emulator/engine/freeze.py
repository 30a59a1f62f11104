"""An environment's freeze control: its processes as the freezer holds them (the ``FreezerGroup``), freeze and thaw,
the time spent frozen, and the listeners told right after a freeze and right before a thaw (the fault proxy)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

from .freezer import FreezerBackend, FreezerGroup
from .memory import process_tree


class FreezeControl:
    def __init__(self, freezer: FreezerBackend, env_id: str):
        self._freezer = freezer
        self._env_id = env_id
        self.group: FreezerGroup | None = None  # made when the environment starts its processes
        self.frozen_total_s = 0.0
        self._frozen_since: float | None = None
        self._listeners: list[Callable[[bool], None]] = []

    @property
    def backend(self) -> str:
        return self._freezer.name

    @property
    def freezes(self) -> bool:
        return self._freezer.name != "none"

    def open(self) -> FreezerGroup:
        """The group the environment's processes join before they exec (raises OSError when it cannot be made)."""
        self.group = self._freezer.group(self._env_id)
        return self.group

    def adopt(self, group: FreezerGroup) -> FreezerGroup:
        """A group made ahead of need (a standby's), whose process is already in it."""
        self.group = group
        return group

    def process_ids(self) -> list[int]:
        """Every process of the group: cgroups list their members; the signal backends know only the leaders."""
        if self.group is None:
            return []
        if self.group.attach_paths:
            return self.group.pids()
        return [pid for leader in self.group.pids() for pid in process_tree(leader)]

    # --------------------------------------------------------------------------------------- freeze and thaw
    @property
    def frozen(self) -> bool:
        return self._frozen_since is not None

    def frozen_s(self, now_s: float) -> float:
        """Time spent frozen so far, the current freeze included."""
        return self.frozen_total_s + (now_s - self._frozen_since if self._frozen_since is not None else 0.0)

    def freeze(self) -> None:
        assert self.group is not None
        self.group.freeze()
        self._frozen_since = time.monotonic()
        for listener in self._listeners:
            listener(True)

    def thaw(self) -> None:
        assert self.group is not None
        if self._frozen_since is not None:
            for listener in self._listeners:
                listener(False)
            self.frozen_total_s += time.monotonic() - self._frozen_since
            self._frozen_since = None
        self.group.thaw()

    def add_listener(self, listener: Callable[[bool], None]) -> None:
        self._listeners.append(listener)

    def remove_listener(self, listener: Callable[[bool], None]) -> None:
        if listener in self._listeners:
            self._listeners.remove(listener)

    # ------------------------------------------------------------------------------------ what the kernel says
    def kernel_frozen(self) -> bool:
        return self.group is not None and self.group.kernel_frozen()

    async def wait_kernel_frozen(self, still_wanted: Callable[[], bool], timeout_s: float) -> bool:
        """Until the kernel has stopped every task of the group (freezing is asynchronous); False on timeout, or as
        soon as ``still_wanted()`` no longer holds.

        The kernel offers no notification for this under cgroup v1 or SIGSTOP, so the state is re-read with a
        growing pause, starting at 100 µs."""
        try:
            delay_s = 0.0001
            async with asyncio.timeout(timeout_s):
                while True:
                    if self.group is None or not still_wanted():
                        return False
                    if self.group.kernel_frozen():
                        return True
                    await asyncio.sleep(delay_s)
                    delay_s = min(delay_s * 2, 0.02)
        except TimeoutError:  # asyncio.timeout's own expiry; a cancellation from outside goes on as CancelledError
            return False

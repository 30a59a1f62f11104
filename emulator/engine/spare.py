"""A spare: a process parked in cgroups of its own before any function is known (``Emulator.keep_spare``), for an
emulator started ahead of its functions (the pytest plugin's next test's). The first function that wants a standby
makes it of the spare (``StandbyKeeper``): its memory limit written then, and its shell given Lambda's paths
(``Parked.enter``). The kernel's first ``cgroup.procs`` write, an RCU grace period of 1-10 ms, is then paid before
the function is known.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
from pathlib import Path

from .freezer import FreezerBackend, FreezerGroup
from .memory_limit import MemoryGroup, MemoryLimiter
from .process import _SPAWNER, Parked, park

log = logging.getLogger("lambda_freeze.standby")
_spare_numbers = itertools.count(1)


class Spare:
    """A process parked in cgroups of its own before any function wants it (``Emulator.keep_spare``); the first
    ``StandbyKeeper`` that makes a standby makes it from this one."""

    # Lambda's largest memory size: the function's own is written when a keeper takes the spare.
    _LIMIT_BYTES = 10240 * 1024 * 1024

    def __init__(self, freezer: FreezerBackend, memory: MemoryLimiter | None):
        self.name = f"spare-{next(_spare_numbers)}"  # its cgroups' name, which the environment adopting it keeps
        self._freezer = freezer
        self._memory = memory
        self._making: asyncio.Future[tuple[FreezerGroup, MemoryGroup | None, Parked] | None] = (
            asyncio.get_running_loop().run_in_executor(_SPAWNER, self._make)
        )
        self._taken = False

    def _make(self) -> tuple[FreezerGroup, MemoryGroup | None, Parked] | None:
        group = self._freezer.group(self.name)
        memory = None
        try:
            if self._memory is not None:
                memory = self._memory.group(self.name, self._LIMIT_BYTES)
            paths = (*group.attach_paths, *((memory.attach_path,) if memory is not None else ()))
            parked = park(Path("/"), paths)
        except OSError as exc:
            remove_now(group, memory)
            log.warning("no spare process (%s)", exc)
            return None
        log.info("spare process %d parked in %s", parked.pid, self.name)
        return group, memory, parked

    async def pid(self) -> int | None:
        """Its parked process's, once made (None if making it failed)."""
        made = await asyncio.shield(self._making)
        return made[2].pid if made is not None else None

    async def take(self) -> tuple[FreezerGroup, MemoryGroup | None, Parked] | None:
        """Its cgroups and process, once made (None if making it failed); taken once."""
        self._taken = True
        return await asyncio.shield(self._making)

    async def discard(self) -> None:
        """Not taken: killed, its cgroups removed."""
        if self._taken:
            return
        self._taken = True
        made = await asyncio.shield(self._making)
        if made is not None:
            await discard(*made)


async def discard(group: FreezerGroup, memory: MemoryGroup | None, parked: Parked) -> None:
    """A spare's process killed and its cgroups removed; its process on the loop (a shell killed and reaped), so this
    works at the process's exit too, when executors take no more work."""
    parked.discard()
    group.kill()
    await group.remove()
    if memory is not None:
        await memory.remove()


def remove_now(group: FreezerGroup, memory: MemoryGroup | None) -> None:
    """The cgroups of a standby or a spare whose process could not be made: empty, removed at once."""
    for path in (getattr(group, "path", None), memory.path if memory is not None else None):
        if path is not None:
            try:
                path.rmdir()
            except OSError:
                pass

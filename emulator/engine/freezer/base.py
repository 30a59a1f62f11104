"""The freezer's interface: ``FreezerGroup``, one environment's processes as a backend holds them (freeze, thaw,
kill, list), and ``FreezerBackend``, which makes one group per environment. The file operations the backends
share are in ``emulator.cgroupfs``, which the watchdog uses too.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from pathlib import Path


class FreezerGroup(ABC):
    """One environment's processes, as the freezer holds them."""

    #: cgroup.procs files the child writes itself into before it execs (empty for signal-based backends)
    attach_paths: tuple[Path, ...] = ()

    def __init__(self) -> None:
        self.pid: int | None = None  # the runtime's
        self.leaders: list[int] = []  # every process started in the environment: extensions, then the runtime

    def attached(self, pid: int) -> None:
        """A process of the environment started in a process group of its own (its pid is the group's id)."""
        self.leaders.append(pid)
        self.pid = pid

    @abstractmethod
    def freeze(self) -> None: ...

    @abstractmethod
    def thaw(self) -> None: ...

    @abstractmethod
    def kernel_frozen(self) -> bool:
        """What the kernel says right now, independent of what the engine asked for."""

    @abstractmethod
    def pids(self) -> list[int]: ...

    @abstractmethod
    def kill(self) -> None:
        """SIGKILL every process of the group, frozen or not; ``remove`` waits until they are gone."""

    async def remove(self) -> None:  # noqa: B027 - nothing to release for signal-based groups
        """Release what the group holds once its processes are gone."""


class FreezerBackend(ABC):
    name: str

    @abstractmethod
    def group(self, env_id: str) -> FreezerGroup: ...

    def close(self) -> None:  # noqa: B027 - signal-based backends create nothing
        """Remove what the backend created for this emulator instance."""

"""The function's memory size as a limit: a memory cgroup per environment, so that a runtime allocating past
``--memory`` is killed by the kernel's OOM killer and the caller gets ``Runtime.OutOfMemory``, as on Lambda.

Uses the cgroup v1 memory controller (``memory.limit_in_bytes``) or cgroup v2's (``memory.max``) where this
process may create cgroups under its own; elsewhere the limit is not enforced, and the emulator says so once.
"""

from __future__ import annotations

import logging
import os
import sys
from pathlib import Path

from .freezer import (
    ROOT_NAME,
    _instance_alive,
    _mountinfo,
    _own_cgroup,
    destroy_instance,
    instance_name,
    make_instance,
    rmdir_when_empty,
    watch,
)

log = logging.getLogger("lambda_freeze.memory")


class MemoryGroup:
    def __init__(self, path: Path, limit_file: str, limit_bytes: int):
        self.path = path
        self._limit_file = limit_file
        self.limit_bytes = sys.maxsize  # a new group's limits: none
        path.mkdir()
        self.set_limit(limit_bytes)
        self.attach_path = path / "cgroup.procs"

    def set_limit(self, limit_bytes: int) -> None:
        """Limit the group's memory (and, where the kernel counts it, memory and swap together) to ``limit_bytes``.
        cgroup v1 keeps the memory limit at or below the memory+swap one: the higher of the two moves first."""
        files = [self.path / self._limit_file]
        swap = self.path / "memory.memsw.limit_in_bytes"
        if swap.exists():
            files = [*files, swap] if limit_bytes < self.limit_bytes else [swap, *files]
        for file in files:
            try:
                file.write_text(str(limit_bytes))
            except OSError:
                if file is not swap:  # swap accounting may be off: no swapping past the limit is a bonus
                    raise
        self.limit_bytes = limit_bytes

    def oom_killed(self) -> bool:
        """Whether the kernel's OOM killer killed a process of this group."""
        for name, key in (("memory.oom_control", "oom_kill "), ("memory.events", "oom_kill ")):
            try:
                for line in (self.path / name).read_text().splitlines():
                    if line.startswith(key):
                        return int(line.split()[1]) > 0
            except (OSError, ValueError):
                continue
        return False

    async def remove(self) -> None:
        try:
            removed = await rmdir_when_empty(self.path, attempts=100)
        except OSError:
            removed = False
        if not removed:
            log.warning("memory cgroup %s left in place", self.path)


class MemoryLimiter:
    """Creates the per-environment memory cgroups of one emulator instance."""

    def __init__(self, hierarchy: Path, limit_file: str):
        self.root = hierarchy / ROOT_NAME
        self.instance = self.root / instance_name()
        self.limit_file = limit_file
        # Left by an emulator that died: its processes are gone by now (a root not made yet holds nothing).
        for stale in self.root.glob("i*"):
            if stale.is_dir() and not _instance_alive(stale.name):
                try:
                    groups = list(stale.iterdir())
                except OSError:  # removed meanwhile by another emulator starting
                    continue
                for group in groups:
                    if group.is_dir():
                        try:
                            group.rmdir()
                        except OSError:
                            pass
                try:
                    stale.rmdir()
                except OSError:
                    pass
        make_instance(self.root, self.instance)

    @property
    def v1(self) -> bool:
        return self.limit_file == "memory.limit_in_bytes"

    @classmethod
    def discover(cls) -> MemoryLimiter | None:
        candidates: list[tuple[Path, str]] = []
        for mount_point, mount_root, kind in _mountinfo():
            if kind.startswith("cgroup ") and "memory" in kind.split()[1].split(","):
                own = _own_cgroup(lambda controllers: "memory" in controllers.split(","))
                candidates.append((_below(mount_point, mount_root, own), "memory.limit_in_bytes"))
            elif kind.startswith("cgroup2 "):
                own = _own_cgroup(lambda controllers: controllers == "")
                hierarchy = _below(mount_point, mount_root, own)
                try:
                    enabled = (hierarchy / "cgroup.subtree_control").read_text().split()
                except OSError:
                    enabled = []
                if "memory" in enabled:
                    candidates.append((hierarchy, "memory.max"))
        reasons = []
        for hierarchy, limit_file in candidates:
            try:
                limiter = cls(hierarchy, limit_file)
                probe = limiter.group("probe", 1 << 30)
                probe.path.rmdir()
                watch(limiter.instance, limiter.v1)  # if the emulator dies, its memory cgroups go with it
                return limiter
            except OSError as exc:
                reasons.append(f"{hierarchy}: {exc.strerror}")
        log.warning(
            "memory sizes are not enforced here (%s): a function allocating past --memory is not stopped",
            "; ".join(reasons) or "no memory cgroup controller this process may use",
        )
        return None

    def group(self, env_id: str, limit_bytes: int) -> MemoryGroup:
        return MemoryGroup(self.instance / env_id, self.limit_file, limit_bytes)

    def close(self) -> None:
        try:
            self.instance.rmdir()
        except OSError:
            if self.instance.is_dir():  # something is left: destroyed as the watchdog would
                destroy_instance(self.instance, self.v1)
        try:
            self.root.rmdir()  # shared by every instance: stays while another one runs
        except OSError:
            pass


def _below(mount_point: str, mount_root: str, own: str | None) -> Path:
    own = own or "/"
    relative = os.path.relpath(own, mount_root) if own.startswith(mount_root) else own.lstrip("/")
    return Path(mount_point) / relative if relative != "." else Path(mount_point)

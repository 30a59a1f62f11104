"""The cgroup backends: ``cgroup2`` freezes through ``cgroup.freeze``, ``cgroup1`` through ``freezer.state``.
Each environment is a cgroup directory under its emulator instance's, which the runtime joins before it execs, so
its children follow; a backend finds its hierarchy through /proc/self/mountinfo and /proc/self/cgroup, and on
start removes the directories of instances that died without cleaning up.
"""

from __future__ import annotations

import asyncio
import errno
import logging
import os
import signal
from collections.abc import Callable
from pathlib import Path

from ...errors import FreezerUnavailable
from ..cgroupfs import _kill, _read_pids, _write, destroy_instance
from .base import FreezerBackend, FreezerGroup
from .instances import ROOT_NAME, _instance_alive, instance_name, make_instance, watch

log = logging.getLogger("lambda_freeze.freezer")


class CgroupGroup(FreezerGroup):
    """A cgroup directory; the child joins it through ``cgroup.procs`` before it execs, so its children follow."""

    def __init__(self, path: Path):
        super().__init__()
        self.path = path
        path.mkdir()
        self.attach_paths = (path / "cgroup.procs",)
        self._fds: dict[str, int] = {}

    def _control(self, name: str, flags: int) -> int:
        """A control file opened once and kept open: a freeze or a thaw is then one write(2)."""
        fd = self._fds.get(name)
        if fd is None:
            fd = self._fds[name] = os.open(self.path / name, flags)
        return fd

    def _set(self, name: str, data: bytes) -> None:
        os.write(self._control(name, os.O_WRONLY), data)

    def pids(self) -> list[int]:
        try:
            return [int(pid) for pid in os.pread(self._control("cgroup.procs", os.O_RDONLY), 65536, 0).split()]
        except FileNotFoundError:
            return []

    def _close_controls(self) -> None:
        for fd in self._fds.values():
            os.close(fd)
        self._fds.clear()

    async def remove(self) -> None:
        self._close_controls()
        if not await rmdir_when_empty(self.path, before_retry=self.kill):
            log.error("cgroup %s still has members %s; left in place", self.path, self.pids())


async def rmdir_when_empty(path: Path, *, before_retry: Callable[[], None] = lambda: None, attempts: int = 200) -> bool:
    """Remove a cgroup directory, retrying while rmdir says EBUSY (members not yet gone: SIGKILLed tasks leave
    within milliseconds); False when it is still busy after ``attempts``. Other errors are raised."""
    delay_s = 0.001
    for _ in range(attempts):
        try:
            os.rmdir(path)
            return True
        except FileNotFoundError:
            return True
        except OSError as exc:
            if exc.errno != errno.EBUSY:
                raise
        before_retry()
        await asyncio.sleep(delay_s)
        delay_s = min(delay_s * 2, 0.05)
    return False


class Cgroup2Group(CgroupGroup):
    #: the control file that kills the whole group, which kernels before 5.14 lack (the tests name a missing file
    #: here to take the fallback those kernels need)
    KILL_FILE = "cgroup.kill"

    def freeze(self) -> None:
        self._set("cgroup.freeze", b"1")

    def thaw(self) -> None:
        self._set("cgroup.freeze", b"0")

    def kernel_frozen(self) -> bool:
        try:
            return "frozen 1" in (self.path / "cgroup.events").read_text()
        except FileNotFoundError:
            return False

    def kill(self) -> None:
        # cgroup.kill reaches frozen tasks and any that escaped the process group (setsid).
        try:
            _write(self.path / self.KILL_FILE, b"1")
        except FileNotFoundError:
            if self.path.exists():  # kernel before 5.14
                for pid in self.pids():
                    _kill(pid, signal.SIGKILL)
                self.thaw()


class Cgroup1Group(CgroupGroup):
    def pids(self) -> list[int]:
        # A v1 cgroup.procs is a list the kernel builds on an open file's first read and hands again to that file's
        # later reads for up to a second: read through a kept-open file it misses a child forked meanwhile (left out
        # of Max Memory Used, and of a kill). Opened afresh, it is current; v2 walks the members on every read.
        return _read_pids(self.path / "cgroup.procs")

    def freeze(self) -> None:
        self._set("freezer.state", b"FROZEN")

    def thaw(self) -> None:
        self._set("freezer.state", b"THAWED")

    def kernel_frozen(self) -> bool:
        try:
            return (self.path / "freezer.state").read_text().strip() == "FROZEN"
        except FileNotFoundError:
            return False

    def kill(self) -> None:
        # A v1-frozen task acts on SIGKILL only once thawed: signal first, then thaw.
        for pid in self.pids():
            _kill(pid, signal.SIGKILL)
        if self.path.exists():
            self.thaw()


def _mountinfo() -> list[tuple[str, str, str]]:
    """(mount point, root, fs type + super options) of every cgroup mount."""
    mounts = []
    for line in Path("/proc/self/mountinfo").read_text().splitlines():
        left, _, right = line.partition(" - ")
        fields = left.split()
        fstype, _source, superopts = [*right.split(), "", "", ""][:3]
        if fstype in ("cgroup", "cgroup2"):
            mounts.append((fields[4], fields[3], f"{fstype} {superopts}"))
    return mounts


def _own_cgroup(match: Callable[[str], bool]) -> str | None:
    for line in Path("/proc/self/cgroup").read_text().splitlines():
        _hid, controllers, path = line.split(":", 2)
        if match(controllers):
            return path
    return None


class CgroupBackend(FreezerBackend):
    group_class: type[CgroupGroup]

    def __init__(self, hierarchy: Path):
        self.hierarchy = hierarchy
        self.root = hierarchy / ROOT_NAME
        self.instance = self.root / instance_name()
        try:
            cleanup_stale(self.root, self.group_class)  # (a root not made yet holds nothing)
            make_instance(self.root, self.instance)
        except OSError as exc:
            raise FreezerUnavailable(f"{self.name}: cannot create cgroups under {self.root}: {exc.strerror}") from None
        self._probe()
        self._watchdog = watch(self.instance, self.group_class is Cgroup1Group)
        self._prepare()

    def _prepare(self) -> None:
        """What the hierarchy needs once the instance's directory exists (nothing for most)."""

    def _probe(self) -> None:
        probe = self.instance / "probe"
        try:
            group = self.group_class(probe)
            group.freeze()
            group.thaw()
        except OSError as exc:
            raise FreezerUnavailable(f"{self.name}: cannot freeze a cgroup under {self.root}: {exc}") from None
        finally:
            try:
                probe.rmdir()
            except OSError:
                pass

    def group(self, env_id: str) -> FreezerGroup:
        return self.group_class(self.instance / env_id)

    def close(self) -> None:
        self._release()
        if not _removed(self.instance, warn=False):  # something is left: destroyed as the watchdog would
            destroy_instance(self.instance, self.group_class is Cgroup1Group)
            _removed(self.instance)
            return
        try:
            self.root.rmdir()  # shared by every instance: stays while another one runs
        except OSError:
            pass

    def _release(self) -> None:
        """Undo ``_prepare``."""


class Cgroup2Backend(CgroupBackend):
    name = "cgroup2"
    group_class = Cgroup2Group

    @classmethod
    def discover(cls) -> Cgroup2Backend:
        mounts = [m for m in _mountinfo() if m[2].startswith("cgroup2 ")]
        own = _own_cgroup(lambda controllers: controllers == "")
        if not mounts or own is None:
            raise FreezerUnavailable("cgroup2: no cgroup v2 hierarchy is mounted")
        mount_point, mount_root, _ = mounts[0]
        relative = os.path.relpath(own, mount_root) if own.startswith(mount_root) else own.lstrip("/")
        hierarchy = Path(mount_point) / relative if relative != "." else Path(mount_point)
        if not (hierarchy / "cgroup.procs").exists():
            raise FreezerUnavailable(f"cgroup2: own cgroup {own} not found under {mount_point}")
        return cls(hierarchy.resolve())


class Cgroup1Backend(CgroupBackend):
    name = "cgroup1"
    group_class = Cgroup1Group

    def _prepare(self) -> None:
        # The v1 freezer switches a kernel static key on when the first cgroup freezes and off when the last thaws,
        # patching kernel text each time: freeze + thaw of a lone environment cost 190 µs, 2 µs once another cgroup
        # stays frozen. An empty cgroup, frozen for as long as the instance runs, is that other one; the kernel
        # then behaves as it does whenever an environment is frozen. The watchdog removes it like an environment's.
        self._anchor: Cgroup1Group | None = None
        try:
            self._anchor = Cgroup1Group(self.instance / "anchor")
            self._anchor.freeze()
        except OSError as exc:
            log.warning("%s: freeze and thaw stay slow (no frozen anchor cgroup: %s)", self.name, exc)

    def _release(self) -> None:
        anchor, self._anchor = self._anchor, None
        if anchor is None:
            return
        try:
            anchor.thaw()
        except OSError:
            pass  # gone already, or not ours to thaw any more: removing it says which
        finally:
            anchor._close_controls()
        _removed(anchor.path)

    @classmethod
    def discover(cls) -> Cgroup1Backend:
        mounts = [m for m in _mountinfo() if m[2].startswith("cgroup ") and "freezer" in m[2].split()[1].split(",")]
        own = _own_cgroup(lambda controllers: "freezer" in controllers.split(","))
        if not mounts or own is None:
            raise FreezerUnavailable("cgroup1: no cgroup v1 freezer hierarchy is mounted")
        mount_point, mount_root, _ = mounts[0]
        relative = os.path.relpath(own, mount_root) if own.startswith(mount_root) else own.lstrip("/")
        hierarchy = Path(mount_point) / relative if relative != "." else Path(mount_point)
        return cls(hierarchy.resolve())


def cleanup_stale(root: Path, group_class: type[CgroupGroup]) -> None:
    """Thaw, kill and remove the cgroups of emulator instances that died without cleaning up."""
    for instance in sorted(root.glob("i*")):
        if instance.is_dir() and not _instance_alive(instance.name):
            destroy_instance(instance, group_class is Cgroup1Group)
            log.warning("removed the cgroups of a stopped emulator instance: %s", instance)


def _removed(path: Path, *, warn: bool = True) -> bool:
    """Remove an empty cgroup directory; whether it is gone (a warning names one that stays, unless ``warn`` is
    False)."""
    try:
        path.rmdir()
    except FileNotFoundError:
        pass
    except OSError as exc:
        if warn:
            log.warning("could not remove %s: %s", path, exc.strerror)
        return False
    return True

"""Freezer backends: stop every thread of an environment's runtime between invocations, and kill it as a whole.

``cgroup2`` (``cgroup.freeze``), ``cgroup1`` (``freezer.state``), ``sigstop`` (SIGSTOP/SIGCONT of the process
group) and ``none`` sit behind one small interface, chosen by name through ``BACKENDS``; ``auto`` takes the first
of cgroup2 → cgroup1 → sigstop that works on this machine.

Each emulator instance keeps its cgroups under ``<hierarchy>/<own cgroup>/lambda-freeze/i<pid>.<start-time>/``;
directories of instances whose process is gone are thawed, emptied and removed by ``cleanup_stale``.
"""

from __future__ import annotations

import asyncio
import errno
import itertools
import logging
import os
import signal
import subprocess
import sys
import time
from abc import ABC, abstractmethod
from collections.abc import Callable
from pathlib import Path

from .errors import ConfigError, FreezerUnavailable

log = logging.getLogger("lambda_freeze.freezer")

ROOT_NAME = "lambda-freeze"


def _write(path: Path, data: bytes) -> None:
    fd = os.open(path, os.O_WRONLY)
    try:
        os.write(fd, data)
    finally:
        os.close(fd)


def _read_pids(procs: Path) -> list[int]:
    try:
        return [int(line) for line in procs.read_text().split()]
    except FileNotFoundError:
        return []


def process_start_time(pid: int) -> str | None:
    """Field 22 of /proc/<pid>/stat: tells a live process from a later one that reuses its pid."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return stat.rsplit(")", 1)[1].split()[19]


_instances = itertools.count(1)


def instance_name() -> str:
    """``i<pid>.<start time>.<n>``: one per emulator, several emulators in one process included."""
    pid = os.getpid()
    return f"i{pid}.{process_start_time(pid)}.{next(_instances)}"


def _instance_alive(name: str) -> bool:
    try:
        pid_s, start = name[1:].split(".")[:2]
        pid = int(pid_s)
    except ValueError:
        return True  # not ours: leave it alone
    return process_start_time(pid) == start


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
            _write(self.path / "cgroup.kill", b"1")
        except FileNotFoundError:
            if self.path.exists():  # kernel before 5.14
                for pid in self.pids():
                    _kill(pid, signal.SIGKILL)
                self.thaw()


class Cgroup1Group(CgroupGroup):
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


def _kill(pid: int, sig: int) -> None:
    try:
        os.kill(pid, sig)
    except ProcessLookupError:
        pass


def _killpg(pgid: int | None, sig: int) -> None:
    if pgid is None:
        return
    try:
        os.killpg(pgid, sig)
    except ProcessLookupError:
        pass


class SigstopGroup(FreezerGroup):
    """SIGSTOP/SIGCONT of the environment's process groups. A runtime that calls setsid() escapes it."""

    def freeze(self) -> None:
        for leader in self.leaders:
            _killpg(leader, signal.SIGSTOP)

    def thaw(self) -> None:
        for leader in self.leaders:
            _killpg(leader, signal.SIGCONT)

    def kernel_frozen(self) -> bool:
        if self.pid is None:
            return False
        try:
            status = Path(f"/proc/{self.pid}/status").read_text()
        except OSError:
            return False
        return "State:\tT" in status

    def pids(self) -> list[int]:
        return list(self.leaders)

    def kill(self) -> None:
        for leader in self.leaders:
            _killpg(leader, signal.SIGKILL)  # SIGKILL ends stopped processes too


class NoFreezeGroup(SigstopGroup):
    """Kills like ``sigstop`` but never freezes: the runtime keeps running between invocations."""

    def freeze(self) -> None:
        pass

    def thaw(self) -> None:
        pass

    def kernel_frozen(self) -> bool:
        return False


class FreezerBackend(ABC):
    name: str

    @abstractmethod
    def group(self, env_id: str) -> FreezerGroup: ...

    def close(self) -> None:  # noqa: B027 - signal-based backends create nothing
        """Remove what the backend created for this emulator instance."""


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
            self.root.mkdir(exist_ok=True)
            cleanup_stale(self.root, self.group_class)
            self.instance.mkdir(exist_ok=True)
        except OSError as exc:
            raise FreezerUnavailable(f"{self.name}: cannot create cgroups under {self.root}: {exc.strerror}") from None
        self._probe()
        self._watchdog = _start_watchdog(self.instance, self.group_class is Cgroup1Group)

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
        _stop_watchdog(self._watchdog)
        try:
            self.instance.rmdir()
        except FileNotFoundError:
            pass
        except OSError as exc:
            log.warning("could not remove %s: %s", self.instance, exc.strerror)
        try:
            self.root.rmdir()  # shared by every instance: stays while another one runs
        except OSError:
            pass


def _start_watchdog(instance: Path, v1: bool) -> subprocess.Popen[bytes]:
    """A small process, never frozen, that destroys the instance's cgroups when the emulator dies.

    A cgroup-frozen runtime does not act on SIGKILL (nor on its parent-death signal) until it is thawed, so an
    emulator killed with SIGKILL would otherwise leave frozen runtimes behind for ever.
    """
    return subprocess.Popen(
        [sys.executable, "-m", "emulator.watchdog", str(instance), "v1" if v1 else "v2"],
        stdin=subprocess.PIPE,
        stdout=subprocess.DEVNULL,
        start_new_session=True,  # a Ctrl-C to the emulator's terminal must not stop it first
    )


def _stop_watchdog(watchdog: subprocess.Popen[bytes]) -> None:
    if watchdog.stdin is not None:
        watchdog.stdin.close()  # EOF: the watchdog cleans what is left and exits
    try:
        watchdog.wait(timeout=5)
    except subprocess.TimeoutExpired:
        watchdog.kill()
        watchdog.wait()


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


class SigstopBackend(FreezerBackend):
    name = "sigstop"

    @classmethod
    def discover(cls) -> SigstopBackend:
        return cls()

    def group(self, env_id: str) -> FreezerGroup:
        return SigstopGroup()


class NoFreezeBackend(FreezerBackend):
    """Explicitly off: runtimes keep running between invocations, as under other local emulators."""

    name = "none"

    @classmethod
    def discover(cls) -> NoFreezeBackend:
        log.warning(
            "freezer 'none': runtimes keep running between invocations, so failures that need a frozen "
            "environment (stale pooled connections, timers firing late) will not reproduce"
        )
        return cls()

    def group(self, env_id: str) -> FreezerGroup:
        return NoFreezeGroup()


BACKENDS: dict[str, Callable[[], FreezerBackend]] = {
    "cgroup2": Cgroup2Backend.discover,
    "cgroup1": Cgroup1Backend.discover,
    "sigstop": SigstopBackend.discover,
    "none": NoFreezeBackend.discover,
}
AUTO_ORDER = ("cgroup2", "cgroup1", "sigstop")
CHOICES = ("auto", *BACKENDS)


def create_freezer(name: str = "auto") -> FreezerBackend:
    """The backend called ``name``; ``auto`` logs which one it chose and why the ones before it could not work."""
    if name == "auto":
        reasons = []
        for candidate in AUTO_ORDER:
            try:
                backend = BACKENDS[candidate]()
            except FreezerUnavailable as exc:
                reasons.append(exc.message)
                continue
            log.info("freezer: %s (auto)%s", backend.name, "".join(f"; {r}" for r in reasons))
            return backend
        raise FreezerUnavailable("no freezer backend works here: " + "; ".join(reasons))
    if name not in BACKENDS:
        raise ConfigError(f"unknown freezer {name!r}: choose one of {', '.join(CHOICES)}")
    backend = BACKENDS[name]()
    log.info("freezer: %s", backend.name)
    return backend


def cleanup_stale(root: Path, group_class: type[CgroupGroup]) -> None:
    """Thaw, kill and remove the cgroups of emulator instances that died without cleaning up."""
    for instance in sorted(root.glob("i*")):
        if instance.is_dir() and not _instance_alive(instance.name):
            destroy_instance(instance, group_class is Cgroup1Group)
            log.warning("removed the cgroups of a stopped emulator instance: %s", instance)


def destroy_instance(instance: Path, v1: bool) -> None:
    """Kill every process in an instance's cgroups, frozen or not, and remove them."""
    for env_dir in [p for p in instance.iterdir() if p.is_dir()]:
        for pid in _read_pids(env_dir / "cgroup.procs"):
            _kill(pid, signal.SIGKILL)
        try:
            if v1:
                _write(env_dir / "freezer.state", b"THAWED")
            else:
                _write(env_dir / "cgroup.kill", b"1")
                _write(env_dir / "cgroup.freeze", b"0")
        except OSError:
            pass
        _rmdir_when_empty(env_dir)
    _rmdir_when_empty(instance)


def _rmdir_when_empty(path: Path) -> None:
    delay_s = 0.001
    for _ in range(60):  # SIGKILLed members leave within milliseconds; give up after about 2 s
        try:
            path.rmdir()
            return
        except FileNotFoundError:
            return
        except OSError as exc:
            if exc.errno != errno.EBUSY:
                log.warning("could not remove %s: %s", path, exc.strerror)
                return
            time.sleep(delay_s)
            delay_s = min(delay_s * 2, 0.05)
    log.warning("could not remove %s: still busy", path)

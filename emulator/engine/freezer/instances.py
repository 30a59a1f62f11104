"""An emulator instance's cgroups as a whole: the name of its directory (``i<pid>.<start time>.<n>``, under
``ROOT_NAME`` in each hierarchy), whether the instance that made a directory still runs, the watchdog process that
destroys the directories of every emulator of a process when the process dies (``watch``; the destruction itself is
``emulator.cgroupfs.destroy_instance``).
"""

from __future__ import annotations

import atexit
import itertools
import os
import subprocess
import sys
import threading
from pathlib import Path

from ..process import exited_within

ROOT_NAME = "lambda-freeze"
# The watchdog's program: ``cgroupfs.watch``, loaded alone from the engine's directory by an interpreter without
# ``site`` or this package (a quarter of the CPU of ``python -m emulator.watchdog``, which runs the same watch). Its
# arguments: a name that says what it is in ps and pgrep, the instance, the cgroup version, the engine's directory.
_WATCH = "import sys; sys.path.insert(0, sys.argv[4]); from cgroupfs import watch; sys.exit(watch(sys.argv[2:4]))"
_ENGINE = str(Path(__file__).resolve().parent.parent)


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


def make_instance(root: Path, instance: Path) -> None:
    """Create the instance's directory ``instance`` in ``root``. Every emulator on the machine shares ``root`` and
    removes it as it closes when it is empty, so another's close may remove it between its creation here and the
    instance's: it is made again then (an emulator closing as the next one starts, the pytest plugin's spare)."""
    for _ in range(100):
        try:
            os.mkdir(root)
        except FileExistsError:  # (pathlib's exist_ok would look again, and find it removed since)
            pass
        try:
            os.mkdir(instance)
        except FileExistsError:
            return
        except FileNotFoundError:
            continue
        return
    os.mkdir(instance)  # removed a hundred times over: what the kernel says


def _instance_alive(name: str) -> bool:
    try:
        pid_s, start = name[1:].split(".")[:2]
        pid = int(pid_s)
    except ValueError:
        return True  # not ours: leave it alone
    return process_start_time(pid) == start


def _start_watchdog(instance: Path, v1: bool) -> subprocess.Popen[bytes]:
    """A small process, never frozen, that destroys the instance's cgroups when the emulator dies.

    A cgroup-frozen runtime does not act on SIGKILL (nor on its parent-death signal) until it is thawed, so an
    emulator killed with SIGKILL would otherwise leave frozen runtimes behind for ever.
    """
    return subprocess.Popen(
        [sys.executable, "-I", "-S", "-c", _WATCH, "emulator.watchdog", str(instance), "v1" if v1 else "v2", _ENGINE],
        stdin=subprocess.PIPE,
        stdout=subprocess.DEVNULL,
        start_new_session=True,  # a Ctrl-C to the emulator's terminal must not stop it first
    )


def _watch_also(watchdog: subprocess.Popen[bytes], instance: Path, v1: bool) -> None:
    """The watchdog destroys ``instance`` too when the emulator dies."""
    assert watchdog.stdin is not None
    watchdog.stdin.write((b"v1 " if v1 else b"v2 ") + os.fsencode(instance) + b"\n")
    watchdog.stdin.flush()


# The process's watchdog, shared by all its emulators (the pytest plugin starts one per test, and the next one's
# while a test runs): an interpreter's start is about 7 ms of CPU, which every emulator's start would pay again.
_watch_lock = threading.Lock()
_watchdog: subprocess.Popen[bytes] | None = None
_watchdog_of = 0  # the pid of the process it watches: a forked child starts its own
_watched: list[tuple[Path, bool]] = []  # every instance told to it, for a watchdog started anew


def watch(instance: Path, v1: bool) -> subprocess.Popen[bytes]:
    """Have the process's watchdog destroy ``instance`` (an instance directory of a cgroup hierarchy, ``v1`` or not)
    when the process dies: started with the first instance, told of each later one on its stdin. Instance names are
    unique to their process, and what an emulator removed when it closed is no longer there to destroy."""
    global _watchdog, _watchdog_of
    with _watch_lock:
        if _watchdog_of != os.getpid():  # the first emulator of this process
            _watchdog, _watchdog_of, _watched[:] = None, os.getpid(), []
            atexit.register(_stop_at_exit)
        _watched.append((instance, v1))
        if _watchdog is not None and _watchdog.poll() is None:
            try:
                _watch_also(_watchdog, instance, v1)
                return _watchdog
            except OSError:  # it ended meanwhile (killed from outside): another one, told of every instance
                pass
        _watchdog = _start_watchdog(*_watched[0])
        for other, other_v1 in _watched[1:]:
            _watch_also(_watchdog, other, other_v1)
        return _watchdog


def _stop_at_exit() -> None:
    """The process ends: EOF, and the watchdog destroys whatever an emulator left (nothing, if each one closed) and
    exits; awaited (killed after 5 s), so that nothing outlives the process."""
    with _watch_lock:
        watchdog = _watchdog if _watchdog_of == os.getpid() else None
    if watchdog is None or watchdog.returncode is not None:
        return
    if watchdog.stdin is not None:
        watchdog.stdin.close()
    if not _exits_within(watchdog, 5.0):
        watchdog.kill()
    watchdog.wait()


def _exits_within(process: subprocess.Popen[bytes], timeout_s: float) -> bool:
    """Whether the process exits within ``timeout_s``, woken by its pidfd the moment it does (``Popen.wait`` with a
    timeout polls in growing naps)."""
    if process.returncode is not None:  # reaped: its pid may belong to another process by now
        return True
    try:
        return exited_within(process.pid, timeout_s)
    except OSError:  # no pidfd here (a kernel before 5.3)
        try:
            process.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            return False
        return True

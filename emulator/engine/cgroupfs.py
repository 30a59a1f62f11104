"""Plain file operations on the cgroup file system that the freezer backends and the watchdog share: write a
control file, signal a pid that may be gone, read a cgroup's members, remove a directory once its members have
left, and destroy an emulator instance's cgroups whatever state they are in.

Kept apart from ``emulator.engine.freezer``, and importing nothing but builtin modules at first (not even pathlib or
logging), so that the watchdog, a process started beside every emulator, loads this file alone in an interpreter
without ``site`` (``watch``): its start then costs about 7 ms of CPU instead of 24 ms, while the emulator's first
runtime starts beside it.
"""

from __future__ import annotations

import _signal  # type: ignore[import-not-found]  # signal without its enums, which cost the watchdog 3 ms
import errno
import os
import sys
import time

_Path = str | os.PathLike[str]


def _warn(message: str, *args: object) -> None:
    import logging  # only when something is wrong: the watchdog starts without it

    logging.getLogger("lambda_freeze.freezer").warning(message, *args)


def _write(path: _Path, data: bytes) -> None:
    fd = os.open(path, os.O_WRONLY)
    try:
        os.write(fd, data)
    finally:
        os.close(fd)


def _kill(pid: int, sig: int) -> None:
    try:
        os.kill(pid, sig)
    except ProcessLookupError:
        pass


def _read_pids(procs: _Path) -> list[int]:
    try:
        with open(procs) as file:
            return [int(line) for line in file.read().split()]
    except FileNotFoundError:
        return []


def destroy_instance(instance: _Path, v1: bool) -> None:
    """Kill every process in an instance's cgroups, frozen or not, and remove them."""
    with os.scandir(instance) as entries:
        env_dirs = [entry.path for entry in entries if entry.is_dir(follow_symlinks=False)]
    for env_dir in env_dirs:
        for pid in _read_pids(os.path.join(env_dir, "cgroup.procs")):
            _kill(pid, _signal.SIGKILL)
        try:
            if v1:
                _write(os.path.join(env_dir, "freezer.state"), b"THAWED")
            else:
                _write(os.path.join(env_dir, "cgroup.kill"), b"1")
                _write(os.path.join(env_dir, "cgroup.freeze"), b"0")
        except OSError:
            pass
        _rmdir_when_empty(env_dir)
    _rmdir_when_empty(instance)


def _rmdir_when_empty(path: _Path) -> None:
    delay_s = 0.001
    for _ in range(60):  # SIGKILLed members leave within milliseconds; give up after about 2 s
        try:
            os.rmdir(path)
            return
        except FileNotFoundError:
            return
        except OSError as exc:
            if exc.errno != errno.EBUSY:
                _warn("could not remove %s: %s", path, exc.strerror)
                return
            time.sleep(delay_s)
            delay_s = min(delay_s * 2, 0.05)
    _warn("could not remove %s: still busy", path)


def watch(argv: list[str]) -> int:
    """The watchdog: ``<instance cgroup dir> v1|v2``; waits for its process to go away (EOF on stdin), then destroys
    what its emulators left. Each line read meanwhile, ``v1|v2 <dir>``, names another instance directory to destroy
    after it: the memory limit's (often in another hierarchy), another emulator's of the same process."""
    watched = [(argv[0], argv[1] == "v1")]
    _signal.signal(_signal.SIGINT, _signal.SIG_IGN)  # only the emulator's end ends the watch
    for line in sys.stdin.buffer:
        version, _, directory = line.rstrip(b"\n").partition(b" ")
        if directory:
            watched.append((os.fsdecode(directory), version == b"v1"))
    for instance, v1 in watched:
        if os.path.isdir(instance):
            destroy_instance(instance, v1)
    return 0

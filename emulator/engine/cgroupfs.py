"""Plain file operations on the cgroup file system that the freezer backends and the watchdog share: write a
control file, signal a pid that may be gone, read a cgroup's members, remove a directory once its members have
left, and destroy an emulator instance's cgroups whatever state they are in.

Kept apart from ``emulator.engine.freezer`` so that the watchdog, a process started beside every emulator, imports only
this (and not asyncio with the backends): its start then costs half the CPU.
"""

from __future__ import annotations

import errno
import logging
import os
import signal
import time
from pathlib import Path

log = logging.getLogger("lambda_freeze.freezer")


def _write(path: Path, data: bytes) -> None:
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


def _read_pids(procs: Path) -> list[int]:
    try:
        return [int(line) for line in procs.read_text().split()]
    except FileNotFoundError:
        return []


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

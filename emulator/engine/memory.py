"""Max Memory Used, measured: the peak resident set (VmHWM) of every process of an environment."""

from __future__ import annotations

import os
from collections.abc import Iterable


def process_tree(pid: int) -> list[int]:
    """``pid`` and its descendants, from /proc/<pid>/task/*/children. Plain ``os`` calls: it runs on every invoke
    of the signal backends (for Max Memory Used), where pathlib cost more than the reads (53 against 21 µs for a
    runtime with four threads)."""
    found = [pid]
    index = 0
    while index < len(found):
        base = f"/proc/{found[index]}/task/"
        index += 1
        try:
            tasks = os.listdir(base)
        except OSError:
            continue
        for task in tasks:
            try:
                fd = os.open(f"{base}{task}/children", os.O_RDONLY)
            except OSError:
                continue
            try:
                children = os.read(fd, 65536)
            except OSError:
                continue
            finally:
                os.close(fd)
            if children:
                found.extend(map(int, children.split()))
    return found


class PeakRssReader:
    """Sum of VmHWM over processes, each /proc/<pid>/status kept open and re-read with pread: one syscall each.

    An open status file stays bound to its process: once the process is gone the read fails, so a reused pid is
    never read by mistake.
    """

    def __init__(self) -> None:
        self._fds: dict[int, int] = {}

    def total_kb(self, pids: Iterable[int]) -> int:
        total = 0
        seen = set()
        for pid in pids:
            seen.add(pid)
            fd = self._fds.get(pid)
            if fd is None:
                try:
                    fd = self._fds[pid] = os.open(f"/proc/{pid}/status", os.O_RDONLY)
                except OSError:
                    continue
            try:
                data = os.pread(fd, 4096, 0)
            except OSError:
                os.close(self._fds.pop(pid))
                continue
            at = data.find(b"VmHWM:")
            if at >= 0:
                total += int(data[at + 6 : data.index(b"kB", at)])
        for pid in [p for p in self._fds if p not in seen]:
            os.close(self._fds.pop(pid))
        return total

    def close(self) -> None:
        for fd in self._fds.values():
            os.close(fd)
        self._fds.clear()

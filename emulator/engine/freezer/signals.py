"""The signal backends: ``sigstop`` freezes an environment with SIGSTOP and thaws it with SIGCONT to each of its
process groups; ``none`` never freezes. Both kill with SIGKILL to the process groups and need no cgroups; a
runtime that calls setsid() escapes them.
"""

from __future__ import annotations

import logging
import os
import signal
from pathlib import Path

from .base import FreezerBackend, FreezerGroup

log = logging.getLogger("lambda_freeze.freezer")


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

"""What an environment tells about itself: its log lines (to the invocation they belong to and to the log sink),
the leak check and Max Memory Used that an invocation's REPORT carries, and its description and kernel freeze
state for ``/_lambda-freeze/environments`` and tests.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from typing import TYPE_CHECKING

from ..config.settings import FunctionConfig
from .context import EngineContext
from .freezer import FreezerBackend, FreezerGroup
from .invocation import Invocation
from .leaks import Leak, LeakDetector
from .lifecycle import Lifecycle, State
from .logs import LineSplitter, LogSink
from .memory import PeakRssReader, process_tree
from .process import RuntimeProcess


class Reports:
    """The ``Environment``'s logs, measurements and self-description."""

    config: FunctionConfig
    id: str
    lifecycle: Lifecycle
    current: Invocation | None
    pending: Invocation | None
    suspended: bool
    leaks: list[Leak]
    recent_lines: deque[str]
    created_s: float
    invocations: int
    init_duration_ms: float | None
    initialization_type: str
    max_memory_mb: int
    frozen_total_s: float
    exit_status: str | None
    _ctx: EngineContext
    _freezer: FreezerBackend
    _sink: LogSink
    _leak_detector: LeakDetector | None
    _retry_of: Invocation | None
    _frozen_since: float | None
    _group: FreezerGroup | None
    _process: RuntimeProcess | None
    _lines: LineSplitter
    _rss: PeakRssReader

    if TYPE_CHECKING:

        @property
        def pid(self) -> int | None: ...

    # ---------------------------------------------------------------------------------------------- logs
    def _drain(self) -> None:
        if self._process is not None:
            self._process.drain_output()
        self._lines.flush()

    def _on_line(self, line: str) -> None:
        self.recent_lines.append(line)
        target = self.current or self._retry_of or self.pending
        self._emit(line, target)

    def _emit(self, line: str, invocation: Invocation | None = None) -> None:
        if invocation is None:
            invocation = self.current or self._retry_of or self.pending
        if invocation is not None:
            invocation.log.append(line)
        self._sink(self.config.name, self.id, line)

    # ----------------------------------------------------------------------------------------------- REPORT
    def _check_leaks(self, invocation: Invocation) -> None:
        assert self._leak_detector is not None
        response = invocation.result.result().payload if invocation.result.done() else None
        leaks = self._leak_detector.check(invocation.request_id, invocation.payload, response, invocation.log.text)
        for leak in leaks:
            self._emit(leak.describe(), invocation)
            self._ctx.timeline.record("leak", self.id, request_id=leak.request_id, value=leak.value, where=leak.where)
        invocation.leaks.extend(leaks)
        self.leaks.extend(leaks)
        del self.leaks[:-100]

    def _measure_memory(self) -> None:
        if self._group is None or self._process is None or self._process.pid is None:
            return
        pids = (
            self._group.pids()
            if self._group.attach_paths
            else [pid for leader in self._group.pids() for pid in process_tree(leader)]
        )
        used_mb = -(-self._rss.total_kb(pids) // 1024)
        self.max_memory_mb = max(self.max_memory_mb, used_mb)

    # ------------------------------------------------------------------------------------------ inspection
    async def wait_kernel_frozen(self, timeout_s: float = 5.0) -> bool:
        """Until the kernel has stopped every task of the group (freezing is asynchronous); False on timeout.

        The kernel offers no notification for this under cgroup v1 or SIGSTOP, so the state is re-read with a
        growing pause, starting at 100 µs.
        """
        delay_s = 0.0001
        async with asyncio.timeout(timeout_s):
            while True:
                if self._group is None or not self.lifecycle.live or self.lifecycle.state is not State.FROZEN:
                    return False
                if self._group.kernel_frozen():
                    return True
                await asyncio.sleep(delay_s)
                delay_s = min(delay_s * 2, 0.02)

    def describe(self) -> dict[str, object]:
        now = time.monotonic()
        frozen_s = self.frozen_total_s + (now - self._frozen_since if self._frozen_since is not None else 0.0)
        return {
            "id": self.id,
            "function": self.config.name,
            "pid": self.pid,
            "state": "frozen" if self.suspended else self.lifecycle.state.public,
            "phase": self.lifecycle.state.value,
            "invocations": self.invocations,
            "freezer": self._freezer.name,
            "kernel_frozen": bool(self._group and self.lifecycle.live and self._group.kernel_frozen()),
            "age_s": round(now - self.created_s, 3),
            "frozen_s": round(frozen_s, 3),
            "init_duration_ms": self.init_duration_ms,
            "initialization_type": self.initialization_type,
            "max_memory_used_mb": self.max_memory_mb,
            "current_request_id": self.current.request_id if self.current else None,
            "exit_status": self.exit_status,
            "suspended": self.suspended,
            "leaks": [
                {"request_id": k.request_id, "value": k.value, "from": k.source_request_id, "where": k.where}
                for k in self.leaks
            ],
        }

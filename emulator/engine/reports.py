"""What an environment tells about itself: its log lines (to the invocation they belong to and to the log sink),
START, END and REPORT with the leak check and Max Memory Used an invocation's REPORT carries, and its lifecycle
transitions on the timeline (it listens to them)."""

from __future__ import annotations

import time
from collections import deque

from ..config.settings import FunctionConfig
from .context import EngineContext
from .freeze import FreezeControl
from .invocation import Invocation
from .leaks import Leak, LeakDetector
from .lifecycle import Transition
from .logs import end_line, report_line, start_line
from .memory import PeakRssReader, process_tree
from .slot import InvocationSlot


class Reports:
    def __init__(
        self,
        config: FunctionConfig,
        env_id: str,
        ctx: EngineContext,
        slot: InvocationSlot,
        freeze: FreezeControl,
        *,
        created_s: float,
    ):
        self._config = config
        self._created_s = created_s
        self._env_id = env_id
        self._ctx = ctx
        self._sink = ctx.sink
        self._slot = slot
        self._freeze = freeze
        self.leaks: list[Leak] = []
        self._leak_detector = LeakDetector() if config.detect_leaks else None
        self.recent_lines: deque[str] = deque(maxlen=50)
        self.max_memory_mb = 0
        self._rss = PeakRssReader()
        self.init_duration_ms: float | None = None
        # The next REPORT carries Init Duration: an invocation waited for this INIT (a cold start).
        self.report_init = slot.retry_of is None

    # ---------------------------------------------------------------------------------------------- timeline
    def on_transition(self, t: Transition) -> None:
        """The lifecycle's listener: every state change goes on the timeline."""
        self._ctx.timeline.record(
            "state", self._env_id, function=self._config.name, old=t.old.value, new=t.new.value, event=t.event
        )

    # -------------------------------------------------------------------------------------------------- logs
    def on_line(self, line: str) -> None:
        """A line the runtime or an extension wrote."""
        self.recent_lines.append(line)
        self.emit(line, self._slot.log_target())

    def emit(self, line: str, invocation: Invocation | None = None) -> None:
        if invocation is None:
            invocation = self._slot.log_target()
        if invocation is not None:
            invocation.log.append(line)
        self._sink(self._config.name, self._env_id, line)

    # ------------------------------------------------------------------------------------- START, END, REPORT
    def init_completed(self, *, cold: bool) -> None:
        """INIT is over (not one retried inside an invocation, whose START was written when it began)."""
        self.init_duration_ms = (time.monotonic() - self._created_s) * 1000
        self.report_init = cold

    def started(self, invocation: Invocation) -> None:
        """START: the event is handed over (or INIT, retried inside the invocation, begins)."""
        self.emit(start_line(invocation.request_id))

    def finished(
        self, invocation: Invocation, *, status: str | None, error_type: str | None, runtime_started: bool
    ) -> None:
        """END and REPORT: the runtime is back in ``next``, or the environment ended the invocation."""
        assert invocation.started_s is not None
        duration_ms = (time.monotonic() - invocation.started_s) * 1000
        if runtime_started:
            self._measure_memory()
        init_ms = self.init_duration_ms if self.report_init else None
        self.report_init = False
        status = status or invocation.status
        if status == "error" and error_type is None and invocation.result.done():
            error_type = invocation.result.result().error_type
        if self._leak_detector is not None:
            self._check_leaks(self._leak_detector, invocation)
        self.emit(end_line(invocation.request_id), invocation)
        self.emit(
            report_line(
                invocation.request_id,
                duration_ms=duration_ms,
                memory_mb=self._config.memory_mb,
                max_memory_used_mb=self.max_memory_mb,
                init_duration_ms=init_ms,
                status=status,
                error_type=error_type,
            ),
            invocation,
        )
        if not invocation.finished.done():
            invocation.finished.set_result(None)

    def _check_leaks(self, detector: LeakDetector, invocation: Invocation) -> None:
        response = invocation.result.result().payload if invocation.result.done() else None
        leaks = detector.check(invocation.request_id, invocation.payload, response, invocation.log.text)
        for leak in leaks:
            self.emit(leak.describe(), invocation)
            self._ctx.timeline.record(
                "leak", self._env_id, request_id=leak.request_id, value=leak.value, where=leak.where
            )
        invocation.leaks.extend(leaks)
        self.leaks.extend(leaks)
        del self.leaks[:-100]

    def _measure_memory(self) -> None:
        group = self._freeze.group
        if group is None:
            return
        pids = group.pids() if group.attach_paths else [pid for leader in group.pids() for pid in process_tree(leader)]
        used_mb = -(-self._rss.total_kb(pids) // 1024)
        self.max_memory_mb = max(self.max_memory_mb, used_mb)

    def close(self) -> None:
        self._rss.close()

"""How an environment's INIT or invocation ends other than by the runtime's answer: the deadline (a timeout, or
with ``reset_on_timeout`` off a suspension), the runtime process's exit, and INIT's failure. Each answers the
waiting invocation, writes its END and REPORT, and stops the environment.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import TYPE_CHECKING, cast

from ..config.settings import FunctionConfig
from .invocation import Invocation, Outcome
from .lifecycle import Lifecycle, State
from .logs import LineSplitter, iso_now
from .memory_limit import MemoryGroup
from .owner import InitFailure, Owner
from .process import describe_exit

if TYPE_CHECKING:
    from .environment import Environment

log = logging.getLogger("lambda_freeze.environment")


class Failures:
    """The ``Environment``'s deadline timer, and its endings by timeout, exit or failed INIT."""

    config: FunctionConfig
    id: str
    lifecycle: Lifecycle
    current: Invocation | None
    pending: Invocation | None
    suspended: bool
    created_s: float
    exit_status: str | None
    init_done: asyncio.Future[InitFailure | None]
    _owner: Owner
    _loop: asyncio.AbstractEventLoop
    _retry_of: Invocation | None
    _timer: asyncio.TimerHandle | None
    _timed_out_request_id: str | None
    _exited: asyncio.Event
    _progress: asyncio.Event
    _lines: LineSplitter
    _memory: MemoryGroup | None

    if TYPE_CHECKING:

        def _emit(self, line: str, invocation: Invocation | None = None) -> None: ...

        def _freeze(self) -> None: ...

        def _finish_current(self, *, status: str | None = None, error_type: str | None = None) -> None: ...

        def _begin_stop(self, reason: str = "spindown") -> None: ...

    def _arm_timer(self, deadline_s: float | None) -> None:
        self._cancel_timer()
        if deadline_s is not None:
            delay = max(0.0, deadline_s - time.monotonic())
            self._timer = self._loop.call_later(delay, self.on_deadline)

    def _cancel_timer(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def on_deadline(self) -> None:
        self._timer = None
        state = self.lifecycle.state
        if state is State.INITIALIZING and self._retry_of is None:
            self._fail_init(
                Outcome.error(
                    "Sandbox.Timedout", f"INIT did not complete within {self.config.init_timeout_s:.2f} seconds"
                ),
                "timeout",
            )
            return
        invocation = self.current or self._retry_of
        if invocation is None or not self.lifecycle.live:
            return
        if not self.config.reset_on_timeout and self.lifecycle.state in (State.INVOKING, State.RESPONDED):
            self._suspend(invocation)
            return
        self.lifecycle.on_deadline()
        self._time_out(invocation)
        self._end_invocation(invocation, status="timeout", error_type="Sandbox.Timedout")
        self._begin_stop("timeout")

    def _time_out(self, invocation: Invocation) -> None:
        """Lambda's timeout line in the log, and its answer to the caller."""
        message = f"Task timed out after {self.config.timeout_s:.2f} seconds"
        self._emit(f"{iso_now()} {invocation.request_id} {message}", invocation)
        invocation.resolve(Outcome.error("Sandbox.Timedout", message, request_id=invocation.request_id))

    def _suspend(self, invocation: Invocation) -> None:
        """Lambda's older behaviour: the timed-out environment is frozen as it is, handler and all, and reused.

        Its late response is refused (the request id is no longer current); on thaw it runs on from where it
        stopped, and the next event waits until its runtime is back in ``next``.
        """
        if self.lifecycle.state is State.INVOKING:
            self.lifecycle.on_error()
        self._time_out(invocation)
        self._finish_current(status="timeout", error_type="Sandbox.Timedout")
        self._timed_out_request_id = invocation.request_id
        self._freeze()
        self.suspended = True
        self._owner.on_suspended(cast("Environment", self))

    def on_exit(self, returncode: int) -> None:
        """The runtime process is gone: reaped here, whether it exited, crashed or was killed."""
        self.exit_status = describe_exit(returncode)
        self._exited.set()
        self._progress.set()
        self._lines.flush()
        if not self.lifecycle.live:
            return
        reason = (
            f"Runtime exited with error: {self.exit_status}"
            if returncode != 0
            else "Runtime exited without providing a reason"
        )
        oom = self._memory is not None and self._memory.oom_killed()
        error_type = "Runtime.OutOfMemory" if oom else "Runtime.ExitError"
        if self.lifecycle.state is State.INITIALIZING and self._retry_of is None:
            self._fail_init(Outcome.error(error_type, reason), "error")
            return
        invocation = self.current or self._retry_of
        self.lifecycle.on_exit()
        if invocation is not None:
            invocation.resolve(Outcome.error(error_type, reason, request_id=invocation.request_id))
            self._end_invocation(invocation, status="error", error_type=error_type)
        else:
            log.warning("%s: runtime exited while idle (%s)", self.id, self.exit_status)
        self._begin_stop("failure")

    def _end_invocation(self, invocation: Invocation, *, status: str, error_type: str) -> None:
        if self.current is invocation:
            self._finish_current(status=status, error_type=error_type)
        else:  # INIT retried inside this invocation never reached `next`
            self.current = invocation
            self._retry_of = None
            if self.pending is invocation:  # answered now: never to be placed again when the environment stops
                self.pending = None
            self._finish_current(status=status, error_type=error_type)

    def _fail_init(self, outcome: Outcome, status: str) -> None:
        """INIT failed (init/error, exit, timeout, no bootstrap)."""
        duration_ms = (time.monotonic() - self.created_s) * 1000
        self._emit(f"INIT_REPORT Init Duration: {duration_ms:.2f} ms\tPhase: init\tStatus: {status}")
        retry = self._retry_of
        if self.lifecycle.state is State.INITIALIZING:
            if status == "error":
                self.lifecycle.on_init_error()
            else:
                self.lifecycle.on_deadline()
        if retry is not None:  # the retried INIT failed too (its timeout is on_deadline's): the invocation gets it
            retry.resolve(outcome)
            self._end_invocation(retry, status="error", error_type=outcome.error_type or "Unhandled")
            failure = None
        else:
            failure = InitFailure(outcome, status)
        pending, self.pending = self.pending, None
        if not self.init_done.done():
            self.init_done.set_result(failure)
        self._begin_stop("failure")
        if failure is not None:
            self._owner.on_init_failed(cast("Environment", self), failure, pending)

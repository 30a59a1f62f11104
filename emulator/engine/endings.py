"""How an environment's INIT and invocations end: normally (END and REPORT once the runtime is back in ``next``),
or otherwise: the deadline (a timeout, or with ``reset_on_timeout`` off a suspension), the runtime's exit, INIT's
failure, a failure of the sandbox itself (an extension crashed or reported one), and a shutdown. Each answers the
waiting invocation, writes its END and REPORT, and, unless the environment is kept, begins its stop.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any

from ..config.settings import FunctionConfig
from .deadline import Deadline
from .freeze import FreezeControl
from .invocation import Invocation, Outcome
from .lifecycle import Lifecycle, State
from .logs import iso_now
from .owner import BoundOwner, InitFailure
from .processes import EnvironmentProcesses
from .reports import Reports
from .shutdown import Shutdown
from .slot import InvocationSlot

log = logging.getLogger("lambda_freeze.environment")


class Endings:
    def __init__(
        self,
        config: FunctionConfig,
        env_id: str,
        *,
        created_s: float,
        lifecycle: Lifecycle,
        slot: InvocationSlot,
        deadline: Deadline,
        freeze: FreezeControl,
        processes: EnvironmentProcesses,
        reports: Reports,
        shutdown: Shutdown,
        owner: BoundOwner[Any],
        init_done: asyncio.Future[InitFailure | None],
    ):
        self._config = config
        self._env_id = env_id
        self._created_s = created_s
        self._lifecycle = lifecycle
        self._slot = slot
        self._deadline = deadline
        self._freeze = freeze
        self._processes = processes
        self._reports = reports
        self._shutdown = shutdown
        self._owner = owner
        self._init_done = init_done

    # ------------------------------------------------------------------------------------------------ normal
    def arm_deadline(self, deadline_s: float | None) -> None:
        """INIT, or an invocation, begins: it ends by ``deadline_s`` (monotonic) or times out; never while the
        function is debugged (a handler paused at a breakpoint is not late)."""
        self._deadline.arm(None if self._config.debug_port is not None else deadline_s, self.on_deadline)

    def cancel_deadline(self) -> None:
        """INIT completed in time."""
        self._deadline.cancel()

    def finish_current(self, *, status: str | None = None, error_type: str | None = None) -> None:
        """END and REPORT for the current invocation: the runtime is back in ``next``, or the environment ended."""
        invocation = self._slot.current
        if invocation is None:
            return
        self._slot.current = None
        self._deadline.cancel()
        self._processes.drain()
        self._reports.finished(
            invocation, status=status, error_type=error_type, runtime_started=self._processes.runtime_started
        )

    # ---------------------------------------------------------------------------------------------- deadline
    def on_deadline(self) -> None:
        lifecycle = self._lifecycle
        state = lifecycle.state
        if state is State.INITIALIZING and self._slot.retry_of is None:
            self.fail_init(
                Outcome.error(
                    "Sandbox.Timedout", f"INIT did not complete within {self._config.init_timeout_s:.2f} seconds"
                ),
                "timeout",
            )
            return
        invocation = self._slot.running
        if invocation is None or not lifecycle.live:
            return
        if not self._config.reset_on_timeout and lifecycle.state in (State.INVOKING, State.RESPONDED):
            self._suspend(invocation)
            return
        lifecycle.on_deadline()
        self._time_out(invocation)
        self.end_invocation(invocation, status="timeout", error_type="Sandbox.Timedout")
        self._shutdown.begin("timeout")

    def _time_out(self, invocation: Invocation) -> None:
        """Lambda's timeout line in the log, and its answer to the caller."""
        message = f"Task timed out after {self._config.timeout_s:.2f} seconds"
        self._reports.emit(f"{iso_now()} {invocation.request_id} {message}", invocation)
        invocation.resolve(Outcome.error("Sandbox.Timedout", message, request_id=invocation.request_id))

    def _suspend(self, invocation: Invocation) -> None:
        """Lambda's older behaviour: the timed-out environment is frozen as it is, handler and all, and reused.

        Its late response is refused (the request id is no longer current); on thaw it runs on from where it
        stopped, and the next event waits until its runtime is back in ``next``.
        """
        if self._lifecycle.state is State.INVOKING:
            self._lifecycle.on_error()
        self._time_out(invocation)
        self.finish_current(status="timeout", error_type="Sandbox.Timedout")
        self._processes.drain()
        self._freeze.freeze()
        self._slot.suspend(invocation.request_id)
        self._owner.on_suspended()

    # ------------------------------------------------------------------------------------------ process exit
    def on_exit(self, returncode: int) -> None:
        """The runtime process is gone: reaped here, whether it exited, crashed or was killed."""
        exit_status = self._processes.runtime_exited(returncode)
        lifecycle = self._lifecycle
        if not lifecycle.live:
            return
        if returncode != 0:
            reason = f"Runtime exited with error: {exit_status}"
        else:
            reason = "Runtime exited without providing a reason"
        error_type = "Runtime.OutOfMemory" if self._processes.oom_killed() else "Runtime.ExitError"
        if lifecycle.state is State.INITIALIZING and self._slot.retry_of is None:
            self.fail_init(Outcome.error(error_type, reason), "error")
            return
        invocation = self._slot.running
        lifecycle.on_exit()
        if invocation is not None:
            invocation.resolve(Outcome.error(error_type, reason, request_id=invocation.request_id))
            self.end_invocation(invocation, status="error", error_type=error_type)
        else:
            log.warning("%s: runtime exited while idle (%s)", self._env_id, exit_status)
        self._shutdown.begin("failure")

    def end_invocation(self, invocation: Invocation, *, status: str, error_type: str) -> None:
        slot = self._slot
        if slot.current is not invocation:  # INIT retried inside this invocation never reached `next`
            slot.current = invocation
            slot.retry_of = None
            if slot.pending is invocation:  # answered now: never to be placed again when the environment stops
                slot.pending = None
        self.finish_current(status=status, error_type=error_type)

    # ------------------------------------------------------------------------------------------ INIT failure
    def fail_init(self, outcome: Outcome, status: str) -> None:
        """INIT failed (init/error, exit, timeout, no bootstrap)."""
        duration_ms = (time.monotonic() - self._created_s) * 1000
        self._reports.emit(f"INIT_REPORT Init Duration: {duration_ms:.2f} ms\tPhase: init\tStatus: {status}")
        retry = self._slot.retry_of
        if self._lifecycle.state is State.INITIALIZING:
            if status == "error":
                self._lifecycle.on_init_error()
            else:
                self._lifecycle.on_deadline()
        failure: InitFailure | None
        if retry is not None:  # the retried INIT failed too (its timeout is on_deadline's): the invocation gets it
            retry.resolve(outcome)
            self.end_invocation(retry, status="error", error_type=outcome.error_type or "Unhandled")
            failure = None
        else:
            failure = InitFailure(outcome, status)
        pending, self._slot.pending = self._slot.pending, None
        if not self._init_done.done():
            self._init_done.set_result(failure)
        self._shutdown.begin("failure")
        if failure is not None:
            self._owner.on_init_failed(failure, pending)

    # ------------------------------------------------------------------------------------- sandbox failures
    def fail(self, error_type: str, message: str, body: bytes | None = None) -> None:
        """A failure of the sandbox itself (an extension crashed or reported one): INIT fails, or the invocation
        does, and the environment is replaced."""
        outcome = Outcome.from_runtime_error(body, error_type) if body else Outcome.error(error_type, message)
        if self._lifecycle.state is State.INITIALIZING:
            self.fail_init(outcome, "error")
            return
        invocation = self._slot.running
        self._lifecycle.on_exit()
        if invocation is not None:
            if body is None:
                outcome = Outcome.error(error_type, message, request_id=invocation.request_id)
            invocation.resolve(outcome)
            self.end_invocation(invocation, status="error", error_type=error_type)
        self._shutdown.begin("failure")

    # ---------------------------------------------------------------------------------------------- shutdown
    def shut_down(self, reason: str) -> None:
        """The owner shuts the environment down: a running invocation ends with ``Runtime.ExitError``."""
        if not self._lifecycle.live:
            return
        invocation = self._slot.running
        self._lifecycle.on_shutdown()
        if invocation is not None:
            message = f"environment shut down ({reason})"
            invocation.resolve(Outcome.error("Runtime.ExitError", message, request_id=invocation.request_id))
            self.end_invocation(invocation, status="error", error_type="Runtime.ExitError")
        self._shutdown.begin()

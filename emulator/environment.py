"""One execution environment: a runtime process behind its own Runtime API endpoint, driven by its lifecycle.

The environment freezes the moment its runtime is back in ``next`` with no event pending, and thaws right before
the next event is handed over. It implements ``runtime_api.RuntimeBackend``: every Runtime API call is validated
first and changes state only through ``Lifecycle``'s event methods.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from dataclasses import dataclass
from typing import Protocol

from runtime_api import MAX_RESPONSE_BYTES, NextEvent, RuntimeEndpoint

from . import runtimes
from .config import FunctionConfig
from .context import EngineContext
from .errors import EnvironmentGone, InvalidRequestID, InvalidStateTransition
from .freezer import FreezerGroup
from .invocation import Invocation, Outcome
from .leaks import Leak, LeakDetector
from .lifecycle import Lifecycle, State, Transition
from .logs import LineSplitter, end_line, iso_now, report_line, start_line
from .memory import peak_rss_kb, process_tree
from .process import RuntimeProcess, describe_exit

log = logging.getLogger("lambda_freeze.environment")

STOP_TIMEOUT_S = 5.0  # how long a SIGKILLed runtime may take to go (a task in uninterruptible sleep)


@dataclass(frozen=True, slots=True)
class InitFailure:
    """Why INIT did not complete: what an invocation that retries INIT and fails again would answer."""

    outcome: Outcome
    status: str  # "error" | "timeout"


class Owner(Protocol):
    """What an environment tells the pool that owns it."""

    def on_idle(self, env: Environment) -> None:
        """The runtime waits in ``next``; the owner may ``assign`` an invocation right now (then no freeze)."""

    def on_init_failed(self, env: Environment, failure: InitFailure, pending: Invocation | None) -> None: ...

    def on_orphaned(self, env: Environment, invocation: Invocation) -> None:
        """An invocation assigned but never handed over: the environment ended first. Route it elsewhere."""

    def on_stopped(self, env: Environment) -> None: ...

    def on_suspended(self, env: Environment) -> None:
        """A timed-out environment was frozen mid-handler (reset_on_timeout off): reusable as it is."""


class Environment:
    def __init__(
        self,
        config: FunctionConfig,
        env_id: str,
        *,
        owner: Owner,
        ctx: EngineContext,
        initialization_type: str = "on-demand",
        retry_of: Invocation | None = None,
    ):
        self.config = config
        self.id = env_id
        self.lifecycle = Lifecycle(env_id)
        self._owner = owner
        self._ctx = ctx
        self._freezer = ctx.freezer
        self._runtime_server = ctx.runtime_server
        self._sink = ctx.sink
        self.lifecycle.listeners.append(self._record_transition)
        self.leaks: list[Leak] = []
        self._leak_detector = LeakDetector() if config.detect_leaks else None
        self.retire_requested = False  # recycled as soon as it is idle
        self.suspended = False  # timed out with reset_on_timeout off: frozen mid-handler, reused as it is
        self._timed_out_request_id: str | None = None
        self.initialization_type = initialization_type
        self._loop = asyncio.get_running_loop()
        self.created_s = time.monotonic()
        self.created_at = time.time()
        self.invocations = 0
        self.init_duration_ms: float | None = None
        self.max_memory_mb = 0
        self.frozen_total_s = 0.0
        self._frozen_since: float | None = None
        self.current: Invocation | None = None  # handed over, not yet finished
        self.pending: Invocation | None = None  # assigned, not yet handed over
        # An invocation whose INIT failed once: INIT is retried inside it, under its own deadline.
        self._retry_of = retry_of
        self._report_init = retry_of is None
        self._next_waiter: asyncio.Future[NextEvent] | None = None
        self._timer: asyncio.TimerHandle | None = None
        self.init_done: asyncio.Future[InitFailure | None] = self._loop.create_future()
        self.stopped = asyncio.Event()
        self._exited = asyncio.Event()
        self.exit_status: str | None = None
        self._stop_task: asyncio.Task[None] | None = None
        self._endpoint: RuntimeEndpoint | None = None
        self._group: FreezerGroup | None = None
        self._process: RuntimeProcess | None = None
        self._lines = LineSplitter(self._on_line)
        self.recent_lines: deque[str] = deque(maxlen=50)
        if retry_of is not None:
            self.pending = retry_of

    def _record_transition(self, t: Transition) -> None:
        self._ctx.timeline.record(
            "state", self.id, function=self.config.name, old=t.old.value, new=t.new.value, event=t.event
        )

    # ------------------------------------------------------------------------------------------------ start
    @property
    def pid(self) -> int | None:
        return self._process.pid if self._process else None

    @property
    def group(self) -> FreezerGroup | None:
        return self._group

    @property
    def freezes(self) -> bool:
        return self._freezer.name != "none"

    async def start(self) -> None:
        """Open the Runtime API endpoint and launch the runtime; INIT then runs (``init_done`` tells its end)."""
        self._endpoint = await self._runtime_server.open_endpoint(self)
        self._emit(f"INIT_START Runtime Version: {self.config.runtime}")
        retry = self._retry_of
        if retry is not None:
            retry.env_id = self.id
            self._emit(start_line(retry.request_id))
            retry.start(self.config.timeout_s)
            self._arm_timer(retry.deadline_s)
        else:
            self._arm_timer(time.monotonic() + self.config.init_timeout_s)
        problem = runtimes.bootstrap_problem(self.config)
        if problem is not None:
            self._fail_init(Outcome.error("Runtime.InvalidEntrypoint", problem), "error")
            return
        try:
            self._group = self._freezer.group(self.id)
            argv = runtimes.command(self.config)
            env = runtimes.environment(
                self.config,
                runtime_api=self._endpoint.address,
                initialization_type=self.initialization_type,
                extra={"AWS_ENDPOINT_URL_LAMBDA": self._ctx.endpoint_url} if self._ctx.endpoint_url else None,
            )
            self._process = RuntimeProcess(
                argv,
                env=env,
                cwd=self.config.code_dir,
                attach_paths=self._group.attach_paths,
                on_output=self._lines.feed,
                on_exit=self.on_exit,
            )
            pid = self._process.start()
        except OSError as exc:
            self._process = None
            self._fail_init(Outcome.error("Runtime.InvalidEntrypoint", f"cannot start the runtime: {exc}"), "error")
            return
        self._group.attached(pid)

    # ------------------------------------------------------------------------------------ Runtime API (runtime)
    async def next_invocation(self) -> NextEvent:
        if self._next_waiter is not None and not self._next_waiter.done():
            raise InvalidStateTransition("a next call is already waiting for this environment")
        state = self.lifecycle.state
        if state is State.INVOKING:
            raise InvalidStateTransition(
                f"next called for request {self.current.request_id if self.current else '?'} before its "
                "response or error was posted"
            )
        self.lifecycle.on_next()  # refuses every other state
        if state is State.INITIALIZING:
            self._init_complete()
        else:
            self._finish_current()
        if self.pending is None:
            self._owner.on_idle(self)
        if self.pending is not None:
            return self._hand_over()
        if self.freezes:
            self.lifecycle.on_freeze()
            self._freeze()
        waiter: asyncio.Future[NextEvent] = self._loop.create_future()
        self._next_waiter = waiter
        try:
            return await waiter
        finally:
            if self._next_waiter is waiter:
                self._next_waiter = None

    def post_response(self, request_id: str, body: bytes, content_type: str | None) -> None:
        if self._late(request_id, "response"):
            return
        invocation = self._answerable(request_id)
        self.lifecycle.on_response()
        invocation.resolve(Outcome(body, None, content_type or "application/json"))

    def post_response_too_large(self, request_id: str, size_bytes: int | None) -> None:
        invocation = self._answerable(request_id)
        self.lifecycle.on_error()
        size = f" ({size_bytes} bytes)" if size_bytes is not None else ""
        invocation.resolve(
            Outcome.error(
                "Function.ResponseSizeTooLarge",
                f"Response payload size{size} exceeded maximum allowed payload size ({MAX_RESPONSE_BYTES} bytes).",
            )
        )

    def post_error(self, request_id: str, body: bytes, error_type: str | None) -> None:
        if self._late(request_id, "error"):
            return
        invocation = self._answerable(request_id)
        self.lifecycle.on_error()
        invocation.resolve(Outcome.from_runtime_error(body, error_type))

    def post_init_error(self, body: bytes, error_type: str | None) -> None:
        if self.lifecycle.state is not State.INITIALIZING:
            raise InvalidStateTransition(
                f"init/error is only allowed during INIT, not while {self.lifecycle.state.value}"
            )
        self._fail_init(Outcome.from_runtime_error(body, error_type), "error")

    def _late(self, request_id: str, what: str) -> bool:
        """The answer of an invocation that timed out in a suspended environment: taken, and dropped."""
        if request_id != self._timed_out_request_id:
            return False
        self._timed_out_request_id = None
        self._emit(f"late {what} for timed-out request {request_id} dropped")
        return True

    def _answerable(self, request_id: str) -> Invocation:
        invocation = self.current
        if invocation is None or invocation.request_id != request_id:
            raise InvalidRequestID("Invalid request ID")
        if self.lifecycle.state is not State.INVOKING:
            raise InvalidRequestID(f"Invalid request ID: request {request_id} was already answered")
        return invocation

    # ------------------------------------------------------------------------------------------- engine side
    def assign(self, invocation: Invocation) -> None:
        """Give this environment its next invocation (the owner checked ``can_take``)."""
        if not self.can_take():
            raise InvalidStateTransition(
                f"environment {self.id} cannot take an invocation while {self.lifecycle.state.value}"
            )
        self.pending = invocation
        invocation.env_id = self.id
        if self.suspended:  # the runtime finishes its timed-out handler first, then comes to `next`
            self.suspended = False
            self._thaw()
        waiter = self._next_waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(self._hand_over())

    def can_take(self) -> bool:
        state = self.lifecycle.state
        if self.pending is not None:
            return False
        if state in (State.READY, State.FROZEN):
            return self._next_waiter is not None and not self._next_waiter.done()
        return state in (State.INITIALIZING, State.RESPONDED)

    @property
    def idle(self) -> bool:
        return self.pending is None and self.lifecycle.state in (State.READY, State.FROZEN)

    def _hand_over(self) -> NextEvent:
        invocation = self.pending
        assert invocation is not None
        self.pending = None
        self._drain()
        if self.lifecycle.state is State.FROZEN:
            self._thaw()
        self.lifecycle.on_invoke()
        self.current = invocation
        self.invocations += 1
        if invocation is self._retry_of:
            self._retry_of = None  # START and deadline were set when the retried INIT began
        else:
            invocation.env_id = self.id
            invocation.cold_start = self._report_init
            self._emit(start_line(invocation.request_id))
            invocation.start(self.config.timeout_s)
            self._arm_timer(invocation.deadline_s)
        return NextEvent(
            request_id=invocation.request_id,
            payload=invocation.payload,
            deadline_ms=invocation.deadline_ms,
            function_arn=invocation.function_arn,
            trace_id=invocation.trace_id,
            client_context=invocation.client_context,
        )

    def _freeze(self) -> None:
        assert self._group is not None
        self._drain()
        self._group.freeze()
        self._frozen_since = time.monotonic()

    def _thaw(self) -> None:
        assert self._group is not None
        self._group.thaw()
        if self._frozen_since is not None:
            self.frozen_total_s += time.monotonic() - self._frozen_since
            self._frozen_since = None

    def _init_complete(self) -> None:
        if self._retry_of is None:
            self._cancel_timer()
            self.init_duration_ms = (time.monotonic() - self.created_s) * 1000
            # REPORT carries Init Duration only when an invocation waited for this INIT (a cold start).
            self._report_init = self.pending is not None
        if not self.init_done.done():
            self.init_done.set_result(None)

    def _finish_current(self, *, status: str | None = None, error_type: str | None = None) -> None:
        """END and REPORT for the current invocation: the runtime is back in ``next``, or the environment ended."""
        invocation = self.current
        if invocation is None:
            return
        self.current = None
        self._cancel_timer()
        self._drain()
        assert invocation.started_s is not None
        duration_ms = (time.monotonic() - invocation.started_s) * 1000
        self._measure_memory()
        init_ms = self.init_duration_ms if self._report_init else None
        self._report_init = False
        status = status or invocation.status
        if status == "error" and error_type is None and invocation.result.done():
            error_type = invocation.result.result().error_type
        if self._leak_detector is not None:
            self._check_leaks(invocation)
        self._emit(end_line(invocation.request_id), invocation)
        self._emit(
            report_line(
                invocation.request_id,
                duration_ms=duration_ms,
                memory_mb=self.config.memory_mb,
                max_memory_used_mb=self.max_memory_mb,
                init_duration_ms=init_ms,
                status=status,
                error_type=error_type,
            ),
            invocation,
        )
        if not invocation.finished.done():
            invocation.finished.set_result(None)

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
        pids = self._group.pids() if self._group.attach_paths else process_tree(self._process.pid)
        used_mb = -(-peak_rss_kb(pids) // 1024)
        self.max_memory_mb = max(self.max_memory_mb, used_mb)

    # ------------------------------------------------------------------------------------- failures and stop
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
        message = f"Task timed out after {self.config.timeout_s:.2f} seconds"
        if not self.config.reset_on_timeout and self.lifecycle.state in (State.INVOKING, State.RESPONDED):
            self._suspend(invocation, message)
            return
        self.lifecycle.on_deadline()
        self._emit(f"{iso_now()} {invocation.request_id} {message}", invocation)
        invocation.resolve(Outcome.error("Sandbox.Timedout", message, request_id=invocation.request_id))
        self._end_invocation(invocation, status="timeout", error_type="Sandbox.Timedout")
        self._begin_stop()

    def _suspend(self, invocation: Invocation, message: str) -> None:
        """Lambda's older behaviour: the timed-out environment is frozen as it is, handler and all, and reused.

        Its late response is refused (the request id is no longer current); on thaw it runs on from where it
        stopped, and the next event waits until its runtime is back in ``next``.
        """
        if self.lifecycle.state is State.INVOKING:
            self.lifecycle.on_error()
        self._emit(f"{iso_now()} {invocation.request_id} {message}", invocation)
        invocation.resolve(Outcome.error("Sandbox.Timedout", message, request_id=invocation.request_id))
        self._finish_current(status="timeout", error_type="Sandbox.Timedout")
        self._timed_out_request_id = invocation.request_id
        self._freeze()
        self.suspended = True
        self._owner.on_suspended(self)

    def on_exit(self, returncode: int) -> None:
        """The runtime process is gone: reaped here, whether it exited, crashed or was killed."""
        self.exit_status = describe_exit(returncode)
        self._exited.set()
        self._lines.flush()
        if not self.lifecycle.live:
            return
        reason = (
            f"Runtime exited with error: {self.exit_status}"
            if returncode != 0
            else "Runtime exited without providing a reason"
        )
        if self.lifecycle.state is State.INITIALIZING and self._retry_of is None:
            self._fail_init(Outcome.error("Runtime.ExitError", reason), "error")
            return
        invocation = self.current or self._retry_of
        self.lifecycle.on_exit()
        if invocation is not None:
            invocation.resolve(Outcome.error("Runtime.ExitError", reason, request_id=invocation.request_id))
            self._end_invocation(invocation, status="error", error_type="Runtime.ExitError")
        else:
            log.warning("%s: runtime exited while idle (%s)", self.id, self.exit_status)
        self._begin_stop()

    def _end_invocation(self, invocation: Invocation, *, status: str, error_type: str) -> None:
        if self.current is invocation:
            self._finish_current(status=status, error_type=error_type)
        else:  # INIT retried inside this invocation never reached `next`
            self.current = invocation
            self._retry_of = None
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
        if retry is not None:  # the retried INIT failed too: the invocation gets the error
            retry.resolve(outcome if status == "error" else self._timeout_outcome(retry))
            self._end_invocation(
                retry,
                status="timeout" if status == "timeout" else "error",
                error_type="Sandbox.Timedout" if status == "timeout" else outcome.error_type or "Unhandled",
            )
            failure = None
        else:
            failure = InitFailure(outcome, status)
        pending, self.pending = self.pending, None
        if not self.init_done.done():
            self.init_done.set_result(failure)
        self._begin_stop()
        if failure is not None:
            self._owner.on_init_failed(self, failure, pending)

    def _timeout_outcome(self, invocation: Invocation) -> Outcome:
        return Outcome.error(
            "Sandbox.Timedout",
            f"Task timed out after {self.config.timeout_s:.2f} seconds",
            request_id=invocation.request_id,
        )

    async def stop(self, reason: str = "shutdown") -> None:
        """Shut the environment down (kill its process group, remove its cgroup); idempotent."""
        if self.lifecycle.live:
            invocation = self.current or self._retry_of
            self.lifecycle.on_shutdown()
            if invocation is not None:
                invocation.resolve(
                    Outcome.error(
                        "Runtime.ExitError", f"environment shut down ({reason})", request_id=invocation.request_id
                    )
                )
                self._end_invocation(invocation, status="error", error_type="Runtime.ExitError")
            self._begin_stop()
        if self._stop_task is not None:
            await asyncio.shield(self._stop_task)

    def _begin_stop(self) -> None:
        if self._stop_task is not None:
            return
        self._cancel_timer()
        if self._group is not None:
            self._group.kill()
        waiter = self._next_waiter
        if waiter is not None and not waiter.done():
            waiter.set_exception(EnvironmentGone("this execution environment is shutting down"))
        pending, self.pending = self.pending, None
        if pending is not None and pending is not self._retry_of:
            self._owner.on_orphaned(self, pending)
        self._stop_task = self._loop.create_task(self._stop(), name=f"stop {self.id}")

    async def _stop(self) -> None:
        try:
            if self._process is not None:
                if self._process.returncode is None:
                    try:
                        async with asyncio.timeout(STOP_TIMEOUT_S):
                            await self._exited.wait()
                    except TimeoutError:
                        log.error(
                            "%s: runtime pid %s did not die within %.0f s of SIGKILL", self.id, self.pid, STOP_TIMEOUT_S
                        )
                self._process.close()
            if self._group is not None:
                await self._group.remove()
            if self._endpoint is not None:
                await self._endpoint.close()
        finally:
            if not self.init_done.done():
                self.init_done.set_result(InitFailure(Outcome.error("Runtime.ExitError", "stopped"), "error"))
            self.lifecycle.on_stopped()
            self.stopped.set()
            self._owner.on_stopped(self)

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

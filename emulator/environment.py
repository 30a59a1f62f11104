"""One execution environment: a runtime process behind its own Runtime API endpoint, driven by its lifecycle.

The environment freezes the moment its runtime is back in ``next`` with no event pending, and thaws right before
the next event is handed over. It implements ``runtime_api.RuntimeBackend``: every Runtime API call is validated
first and changes state only through ``Lifecycle``'s event methods.

This module holds the lifecycle's main line: the start, ``next``, the hand-over of an event, freeze and thaw, END
and REPORT. The rest of ``Environment`` comes from its bases, one concept each: the runtime's answers
(``answers``), its extensions (``extension_side``), timeouts, exits and failed INITs (``failures``), the stop and
SHUTDOWN phase (``shutdown``), and its logs and self-description (``reports``). ``owner`` holds what it tells the
pool that owns it. Each base declares the attributes it uses (``Environment.__init__`` sets them all) and, for the
type checker only, the methods of the others that it calls.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import Callable
from pathlib import Path

from runtime_api import NextEvent, RuntimeEndpoint

from . import runtimes
from .answers import ANSWERED_WAIT_S, Answers
from .config import FunctionConfig
from .context import EngineContext
from .errors import InvalidStateTransition, LambdaFreezeError
from .extension_side import ExtensionSide
from .extensions import ExtensionHub
from .failures import Failures
from .freezer import FreezerGroup
from .invocation import Invocation, Outcome
from .leaks import Leak, LeakDetector
from .lifecycle import Lifecycle, State, Transition
from .logs import LineSplitter, end_line, report_line, start_line
from .memory import PeakRssReader, process_tree
from .memory_limit import MemoryGroup
from .owner import InitFailure, Owner
from .process import RuntimeProcess
from .reports import Reports
from .shutdown import STOP_TIMEOUT_S, Shutdown

__all__ = ["ANSWERED_WAIT_S", "STOP_TIMEOUT_S", "Environment", "InitFailure", "Owner"]


class Environment(Answers, ExtensionSide, Failures, Shutdown, Reports):
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
        self._freeze_listeners: list[Callable[[bool], None]] = []
        self._runtime_waiting = False  # the runtime is in `next` (the environment may freeze once extensions are)
        self._progress = asyncio.Event()  # an extension or a process moved: the SHUTDOWN phase looks again
        self.extensions = ExtensionHub(
            function_name=config.name,
            handler=config.handler,
            account_id=config.account_id,
            on_ready=self._on_extension_ready,
        )
        self._extension_processes: dict[str, RuntimeProcess] = {}
        self.shutdown_reason = "spindown"
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
        self._give_back_timer: asyncio.TimerHandle | None = None
        self.init_done: asyncio.Future[InitFailure | None] = self._loop.create_future()
        self.stopped = asyncio.Event()
        self._exited = asyncio.Event()
        self.exit_status: str | None = None
        self._stop_task: asyncio.Task[None] | None = None
        self._endpoint: RuntimeEndpoint | None = None
        self._group: FreezerGroup | None = None
        self._process: RuntimeProcess | None = None
        self._lines = LineSplitter(self._on_line)
        self._rss = PeakRssReader()
        self._memory: MemoryGroup | None = None  # the memory size as a limit, where it can be enforced
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

    def process_ids(self) -> list[int]:
        """Every process of the environment; the Runtime API refuses connections other environments' make."""
        if self._group is None:
            return []
        if self._group.attach_paths:
            return self._group.pids()
        return [pid for leader in self._group.pids() for pid in process_tree(leader)]  # signals know the leaders

    @property
    def freezes(self) -> bool:
        return self._freezer.name != "none"

    # The fault proxy's view (proxy.EnvironmentView): told right after a freeze and right before a thaw.
    @property
    def frozen(self) -> bool:
        return self._frozen_since is not None

    def add_freeze_listener(self, listener: Callable[[bool], None]) -> None:
        self._freeze_listeners.append(listener)

    def remove_freeze_listener(self, listener: Callable[[bool], None]) -> None:
        if listener in self._freeze_listeners:
            self._freeze_listeners.remove(listener)

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
        extra = await self._owner.open_upstreams(self)
        if self._ctx.endpoint_url:
            extra["AWS_ENDPOINT_URL_LAMBDA"] = self._ctx.endpoint_url
        try:
            self._group = self._freezer.group(self.id)
            if self._ctx.memory is not None:
                self._memory = self._ctx.memory.group(self.id, self.config.memory_mb * 1024 * 1024)
            argv = runtimes.command(self.config)
            env = runtimes.environment(
                self.config,
                runtime_api=self._endpoint.address,
                initialization_type=self.initialization_type,
                extra=extra,
            )
        except OSError as exc:
            self._fail_init(Outcome.error("Runtime.InvalidEntrypoint", f"cannot start the runtime: {exc}"), "error")
            return
        except LambdaFreezeError as exc:  # e.g. no interpreter for the runtime: the message says how to get one
            self._fail_init(Outcome.error("Runtime.InvalidEntrypoint", exc.message), "error")
            return
        if not await self._start_extensions(env):
            return
        try:
            self._process = RuntimeProcess(
                argv,
                env=env,
                cwd=self.config.code_dir,
                attach_paths=self._attach_paths(),
                on_output=self._lines.feed,
                on_exit=self.on_exit,
            )
            pid = await self._process.start()
        except OSError as exc:
            self._process = None
            self._exited.set()  # nothing to wait for when stopping
            self._fail_init(Outcome.error("Runtime.InvalidEntrypoint", f"cannot start the runtime: {exc}"), "error")
            return
        self._attached(pid)

    def _attached(self, pid: int) -> None:
        """A process of the environment has exec'd, in its cgroups. When the environment was told to stop while the
        process started, the group's kill came before it joined: it is killed now."""
        assert self._group is not None
        self._group.attached(pid)
        if self._stop_task is not None:
            self._group.kill()

    def _attach_paths(self) -> tuple[Path, ...]:
        """The cgroups a process of this environment joins before it execs: the freezer's and the memory one."""
        assert self._group is not None
        memory = (self._memory.attach_path,) if self._memory is not None else ()
        return (*self._group.attach_paths, *memory)

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
        repoll = state is State.READY and not self._runtime_waiting  # an earlier `next` was withdrawn
        if state not in (State.INITIALIZING, State.RESPONDED) and not repoll:
            self.lifecycle.on_next()  # refuses: the message names the state
        waiter: asyncio.Future[NextEvent] = self._loop.create_future()
        self._next_waiter = waiter
        self._runtime_waiting = True
        if repoll:
            self._deliver()  # an invocation may have been assigned meanwhile
        else:
            self._advance()
        try:
            return await waiter
        finally:
            if self._next_waiter is waiter:
                self._next_waiter = None
                if waiter.cancelled():  # the call was withdrawn (its connection closed): the runtime is not waiting
                    self._runtime_waiting = False
            # Ended by an exception, the future holds a traceback that holds this frame, and the frame the future: a
            # cycle that would keep a stopped environment until the cycle collector runs.
            del waiter

    def _advance(self) -> None:
        """INIT, or the invocation, is over once the runtime and every extension are back in `next`: then the
        next event is handed over, or the environment freezes."""
        if not self._runtime_waiting or self.extensions.busy:
            return
        state = self.lifecycle.state
        if state is State.INITIALIZING:
            self.lifecycle.on_next()
            self._init_complete()
        elif state is State.RESPONDED and not self.suspended:
            self.lifecycle.on_next()
            self._finish_current()
        else:
            return
        if self.pending is None:
            self._owner.on_idle(self)  # may assign an invocation, handed over at once
        if self.lifecycle.state is not State.READY:
            return
        if self.pending is not None:
            self._deliver()
        elif self.freezes:
            self.lifecycle.on_freeze()
            self._freeze()

    def _deliver(self) -> None:
        """Hand the pending event to the runtime's waiting `next`; a frozen environment is thawed only after the
        event is written to its socket. On Lambda the Runtime API server is frozen with the runtime and answers
        the moment both are thawed: whatever else reached the runtime while it was frozen (a server's FIN, an
        expired timer) is there in the same instant as the event, as here."""
        waiter = self._next_waiter
        if waiter is None or waiter.done():
            return
        frozen = self.lifecycle.state is State.FROZEN
        waiter.set_result(self._hand_over())
        if frozen:
            # Runs after the `next` handler's step, which writes the response without yielding to the loop.
            self._loop.call_soon(self._thaw_if_frozen)

    def _thaw_if_frozen(self) -> None:
        if self._frozen_since is not None and self.lifecycle.live:
            self._thaw()

    # ------------------------------------------------------------------------------------------- engine side
    def assign(self, invocation: Invocation) -> None:
        """Give this environment its next invocation (the owner checked ``can_take``)."""
        if not self.can_take():
            raise InvalidStateTransition(
                f"environment {self.id} cannot take an invocation while {self.lifecycle.state.value}"
            )
        self.pending = invocation
        invocation.env_id = self.id
        if self.lifecycle.state is State.RESPONDED:
            self._arm_give_back(invocation)
        if self.suspended:  # the runtime finishes its timed-out handler first, then comes to `next`
            self.suspended = False
            self._thaw()
        if self.lifecycle.state in (State.READY, State.FROZEN):
            self._deliver()

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
        self._cancel_give_back()
        self._drain()
        self.lifecycle.on_invoke()  # from FROZEN too: the thaw follows the event (see _deliver)
        self._runtime_waiting = False
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
        if self.extensions.extensions:
            self.extensions.invoke(
                request_id=invocation.request_id,
                deadline_ms=invocation.deadline_ms,
                function_arn=invocation.function_arn,
                trace_id=invocation.trace_id,
            )
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
        for listener in self._freeze_listeners:
            listener(True)

    def _thaw(self) -> None:
        assert self._group is not None
        if self._frozen_since is not None:
            for listener in self._freeze_listeners:
                listener(False)
            self.frozen_total_s += time.monotonic() - self._frozen_since
            self._frozen_since = None
        self._group.thaw()

    def _init_complete(self) -> None:
        self.extensions.close_registration()
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

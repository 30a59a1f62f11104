"""One execution environment: a runtime process behind its own Runtime API endpoint, driven by its lifecycle.

The environment freezes the moment its runtime is back in ``next`` with no event pending, and thaws right before
the next event is handed over. Its Runtime API endpoint talks to ``runtime_side`` (``runtime_api.RuntimeBackend``):
every Runtime API call is validated first and changes state only through ``Lifecycle``'s event methods.

This module holds the lifecycle's main line (the start, ``next``, the hand-over of an event, freeze and thaw) and
puts the environment together from parts that each own their state: the invocation slot and the runtime's answers
(``slot``), the freeze control (``freeze``), the processes (``processes``), the deadline (``deadline``), the logs
and REPORT lines (``reports``, a listener of the lifecycle's transitions), the endings by timeout, exit or failure
(``endings``), the stop (``shutdown``) and the extensions (``extension_side``). The parts refer only to parts
below them, and to the pool through ``owner.BoundOwner``.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

from runtime_api import NextEvent

from ..config.settings import PYTHON_RUNTIMES, FunctionConfig
from ..errors import InvalidStateTransition, LambdaFreezeError
from . import lambda_paths, runtimes
from .clock import VirtualTime
from .context import EngineContext
from .deadline import Deadline
from .endings import Endings
from .extension_side import ExtensionSide
from .extensions import ExtensionHub
from .freeze import FreezeControl
from .invocation import Invocation, Outcome
from .lifecycle import Lifecycle, State
from .owner import BoundOwner, InitFailure, Owner
from .processes import EnvironmentProcesses
from .reports import Reports
from .runtime_side import RuntimeSide
from .shutdown import Shutdown
from .slot import InvocationSlot
from .standby import Standby

# The variables that decide a function's view of the paths (``lambda_paths.Mounts.hidden``).
_SEARCH_PATHS = frozenset({"PYTHONPATH", "NODE_PATH"})

__all__ = ["Environment", "InitFailure", "Owner"]


class Environment:
    def __init__(
        self,
        config: FunctionConfig,
        env_id: str,
        *,
        owner: Owner[Environment],
        ctx: EngineContext,
        initialization_type: str = "on-demand",
        retry_of: Invocation | None = None,
    ):
        self.config = config
        self.id = env_id
        self._owner = owner
        self._ctx = ctx
        self._loop = asyncio.get_running_loop()
        self.retire_requested = False  # recycled as soon as it is idle
        self.initialization_type = initialization_type
        self.created_s = time.monotonic()
        self.created_at = time.time()
        self.invocations = 0
        self.init_done: asyncio.Future[InitFailure | None] = self._loop.create_future()
        # The parts, each made before the ones that use it. Only three things lead back to the environment, and the
        # stop lets go of each: ``bound_owner``, the extension hub's ``on_ready``, and the endpoint's runtime side.
        self.lifecycle = Lifecycle(env_id)
        self.slot = InvocationSlot(self.lifecycle, self._loop, retry_of=retry_of)
        self.freeze = FreezeControl(ctx.freezer, env_id)
        self.virtual = VirtualTime(env_id, config.name, ctx.timeline, enabled=config.virtual_time)
        self.reports = Reports(config, env_id, ctx, self.slot, self.freeze, created_s=self.created_s)
        self.lifecycle.listeners.append(self.reports.on_transition)
        self.processes = EnvironmentProcesses(env_id, config.code_dir, self.reports.on_line)
        self.extensions = ExtensionHub(
            function_name=config.name,
            handler=config.handler,
            account_id=config.account_id,
            on_ready=self._on_extension_ready,
        )
        bound_owner = BoundOwner(owner, self)
        deadline = Deadline(self._loop)
        self.shutdown = Shutdown(
            env_id,
            ctx,
            self._loop,
            lifecycle=self.lifecycle,
            slot=self.slot,
            deadline=deadline,
            freeze=self.freeze,
            processes=self.processes,
            reports=self.reports,
            extensions=self.extensions,
            owner=bound_owner,
            init_done=self.init_done,
        )
        self.endings = Endings(
            config,
            env_id,
            created_s=self.created_s,
            lifecycle=self.lifecycle,
            slot=self.slot,
            deadline=deadline,
            freeze=self.freeze,
            processes=self.processes,
            reports=self.reports,
            shutdown=self.shutdown,
            owner=bound_owner,
            init_done=self.init_done,
        )
        self.extension_side = ExtensionSide(
            config,
            lifecycle=self.lifecycle,
            hub=self.extensions,
            processes=self.processes,
            reports=self.reports,
            endings=self.endings,
            shutdown=self.shutdown,
        )
        self.stopped = self.shutdown.stopped

    # ------------------------------------------------------------------------------------- what others read
    @property
    def pid(self) -> int | None:
        return self.processes.pid

    @property
    def current(self) -> Invocation | None:
        return self.slot.current

    @property
    def suspended(self) -> bool:
        return self.slot.suspended

    @property
    def exit_status(self) -> str | None:
        return self.processes.exit_status

    # The fault proxy's view (proxy.EnvironmentView): told right after a freeze and right before a thaw.
    @property
    def frozen(self) -> bool:
        return self.freeze.frozen

    def add_freeze_listener(self, listener: Callable[[bool], None]) -> None:
        self.freeze.add_listener(listener)

    def remove_freeze_listener(self, listener: Callable[[bool], None]) -> None:
        self.freeze.remove_listener(listener)

    # ------------------------------------------------------------------------------------------------ start
    async def start(self, standby: Standby | asyncio.Future[Standby | None] | None = None) -> bool:
        """Open the Runtime API endpoint and launch the runtime; INIT then runs (``init_done`` tells its end).

        With a ``standby``, its cgroups and parked process become this environment's, and its process execs the
        runtime; returns whether it was taken (adopted, or let go as unfit): if not, the caller still owns it. A
        standby still being taken (a future) is waited for only once everything else the start needs is ready."""
        endpoint = await self._ctx.runtime_server.open_endpoint(
            RuntimeSide(
                self.next_invocation,
                lifecycle=self.lifecycle,
                slot=self.slot,
                reports=self.reports,
                endings=self.endings,
                extension_side=self.extension_side,
                freeze=self.freeze,
            )
        )
        self.shutdown.endpoint = endpoint
        self.reports.emit(f"INIT_START Runtime Version: {self.config.runtime}")
        retry = self.slot.retry_of
        if retry is not None:
            retry.env_id = self.id
            self.reports.started(retry)
            retry.start(self.config.timeout_s)
            retry.deadline_ms = self.virtual.deadline_ms(retry.deadline_ms)
            self.endings.arm_deadline(retry.deadline_s)
        else:
            self.endings.arm_deadline(time.monotonic() + self.config.init_timeout_s)
        if isinstance(standby, asyncio.Future) and standby.done() and not standby.cancelled():
            if standby.exception() is None:
                standby = standby.result()
        ready = standby if isinstance(standby, Standby) else None  # taken: what it worked out at park time holds
        # A Python runtime's standby was parked only once its interpreter was found installed (``runtimes.command``).
        python_ready = ready is not None and self.config.runtime in PYTHON_RUNTIMES
        problem = None if python_ready else runtimes.bootstrap_problem(self.config)
        if problem is not None:
            self.endings.fail_init(Outcome.error("Runtime.InvalidEntrypoint", problem), "error")
            return False
        extra = await self._owner.open_upstreams(self)
        if self._ctx.endpoint_url:
            extra["AWS_ENDPOINT_URL_LAMBDA"] = self._ctx.endpoint_url
        if self.shutdown.begun:  # stopped while the upstreams opened: the standby stays its keeper's
            return False
        adopted = False
        try:
            if ready is not None and not _SEARCH_PATHS & extra.keys():  # its view of the paths holds for this env
                argv = list(ready.argv)
                env = runtimes.completed_environment(
                    self.config,
                    ready.base_env,
                    runtime_api=endpoint.address,
                    initialization_type=self.initialization_type,
                    extra=extra,
                )
                mounts = ready.mounts
            else:
                argv = runtimes.command(self.config)
                env = runtimes.environment(
                    self.config,
                    runtime_api=endpoint.address,
                    initialization_type=self.initialization_type,
                    extra=extra,
                )
                mounts = lambda_paths.for_function(self.config, argv, env)
            if isinstance(standby, asyncio.Future):
                standby = await standby
            if self.shutdown.begun:  # stopped while the standby was made: it stays its keeper's
                return False
            if standby is not None and standby.mounts != mounts:  # parked in another view of the paths
                adopted = True  # let go here: its cgroups bear this environment's name, which its own will take
                await standby.discard()
                standby = None
            if standby is not None:
                adopted = True
                group = self.freeze.adopt(standby.group)
                self.processes.memory = standby.memory
                self.processes.parked = standby.parked
                self._ctx.timeline.record("standby", standby.name, function=self.config.name, event="adopted",
                                          env_id=self.id, pid=standby.parked.pid)
            else:
                group = self.freeze.open()
                if self._ctx.memory is not None:
                    self.processes.memory = self._ctx.memory.group(self.id, self.config.memory_mb * 1024 * 1024)
            self.processes.mounts = mounts
            if self.processes.mounts is not None:
                argv, env = self.processes.mounts.command(argv), self.processes.mounts.environment(env)
        except OSError as exc:
            self.endings.fail_init(
                Outcome.error("Runtime.InvalidEntrypoint", f"cannot start the runtime: {exc}"), "error"
            )
            return adopted
        except LambdaFreezeError as exc:  # e.g. no interpreter for the runtime: the message says how to get one
            self.endings.fail_init(Outcome.error("Runtime.InvalidEntrypoint", exc.message), "error")
            return adopted
        env.update(self.virtual.variables(env))
        if not await self.extension_side.start(env, group):
            return adopted
        try:
            pid = await self.processes.start_runtime(argv, env, group, on_exit=self.endings.on_exit)
        except OSError as exc:
            self.endings.fail_init(
                Outcome.error("Runtime.InvalidEntrypoint", f"cannot start the runtime: {exc}"), "error"
            )
            return adopted
        self.shutdown.attached(pid)
        return adopted

    def _on_extension_ready(self) -> None:
        """An extension is back in ``event/next``: INIT or the invocation may be over."""
        self.processes.progress.set()
        self._advance()

    # ------------------------------------------------------------------------------------ Runtime API (runtime)
    async def next_invocation(self) -> NextEvent:
        slot = self.slot
        if slot.waiting:
            raise InvalidStateTransition("a next call is already waiting for this environment")
        state = self.lifecycle.state
        if state is State.INVOKING:
            raise InvalidStateTransition(
                f"next called for request {slot.current.request_id if slot.current else '?'} before its "
                "response or error was posted"
            )
        repoll = state is State.READY and not slot.runtime_waiting  # an earlier `next` was withdrawn
        if state not in (State.INITIALIZING, State.RESPONDED) and not repoll:
            self.lifecycle.on_next()  # refuses: the message names the state
        waiter: asyncio.Future[NextEvent] = self._loop.create_future()
        slot.waiter = waiter
        slot.runtime_waiting = True
        if repoll:
            self._deliver()  # an invocation may have been assigned meanwhile
        else:
            self._advance()
        try:
            return await waiter
        finally:
            if slot.waiter is waiter:
                slot.waiter = None
                if waiter.cancelled():  # the call was withdrawn (its connection closed): the runtime is not waiting
                    slot.runtime_waiting = False
            # Ended by an exception, the future holds a traceback that holds this frame, and the frame the future: a
            # cycle that would keep a stopped environment until the cycle collector runs.
            del waiter

    def _advance(self) -> None:
        """INIT, or the invocation, is over once the runtime and every extension are back in `next`: then the
        next event is handed over, or the environment freezes."""
        slot = self.slot
        if not slot.runtime_waiting or self.extensions.busy:
            return
        lifecycle = self.lifecycle
        state = lifecycle.state
        if state is State.INITIALIZING:
            lifecycle.on_next()
            self._init_complete()
        elif state is State.RESPONDED and not slot.suspended:
            lifecycle.on_next()
            self.endings.finish_current()
        else:
            return
        if slot.pending is None:
            self._owner.on_idle(self)  # may assign an invocation, handed over at once
        if lifecycle.state is not State.READY:
            return
        if slot.pending is not None:
            self._deliver()
        elif self.freeze.freezes:
            lifecycle.on_freeze()
            self.processes.drain()
            self.freeze.freeze()

    def _deliver(self) -> None:
        """Hand the pending event to the runtime's waiting `next`; a frozen environment is thawed only after the
        event is written to its socket. On Lambda the Runtime API server is frozen with the runtime and answers
        the moment both are thawed: whatever else reached the runtime while it was frozen (a server's FIN, an
        expired timer) is there in the same instant as the event, as here."""
        waiter = self.slot.waiter
        if waiter is None or waiter.done():
            return
        frozen = self.lifecycle.state is State.FROZEN
        waiter.set_result(self._hand_over())
        if frozen:
            # Runs after the `next` handler's step, which writes the response without yielding to the loop.
            self._loop.call_soon(self._thaw_if_frozen)

    def _thaw_if_frozen(self) -> None:
        if self.freeze.frozen and self.lifecycle.live:
            self.freeze.thaw()

    def _hand_over(self) -> NextEvent:
        slot = self.slot
        invocation = slot.pending
        assert invocation is not None
        slot.pending = None
        slot.cancel_give_back()
        self.processes.drain()
        self.lifecycle.on_invoke()  # from FROZEN too: the thaw follows the event (see _deliver)
        slot.runtime_waiting = False
        slot.current = invocation
        self.invocations += 1
        if invocation is slot.retry_of:
            slot.retry_of = None  # START and deadline were set when the retried INIT began
        else:
            invocation.env_id = self.id
            invocation.cold_start = self.reports.report_init
            self.reports.started(invocation)
            invocation.start(self.config.timeout_s)
            invocation.deadline_ms = self.virtual.deadline_ms(invocation.deadline_ms)
            self.endings.arm_deadline(invocation.deadline_s)
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

    def advance_clock(self, seconds: float) -> None:
        """A virtual freeze: move the frozen runtime's clocks forward by ``seconds``; it reads them on thaw."""
        if self.lifecycle.state is not State.FROZEN:
            raise InvalidStateTransition(
                f"environment {self.id} is {self.lifecycle.state.value}: only a frozen environment's clock moves"
            )
        self.virtual.advance(seconds)

    def _init_complete(self) -> None:
        self.extensions.close_registration()
        if self.slot.retry_of is None:
            self.endings.cancel_deadline()
            # REPORT carries Init Duration only when an invocation waited for this INIT (a cold start).
            self.reports.init_completed(cold=self.slot.pending is not None)
        if not self.init_done.done():
            self.init_done.set_result(None)

    # ------------------------------------------------------------------------------------------- engine side
    def assign(self, invocation: Invocation) -> None:
        """Give this environment its next invocation (the owner checked ``can_take``)."""
        if not self.can_take():
            raise InvalidStateTransition(
                f"environment {self.id} cannot take an invocation while {self.lifecycle.state.value}"
            )
        slot = self.slot
        slot.pending = invocation
        invocation.env_id = self.id
        if self.lifecycle.state is State.RESPONDED:
            slot.arm_give_back(invocation, self._give_back)
        if slot.suspended:  # the runtime finishes its timed-out handler first, then comes to `next`
            slot.resume()
            self.freeze.thaw()
        if self.lifecycle.state in (State.READY, State.FROZEN):
            self._deliver()

    def can_take(self) -> bool:
        state = self.lifecycle.state
        if self.slot.pending is not None:
            return False
        if state in (State.READY, State.FROZEN):
            waiter = self.slot.waiter  # the runtime's `next` waits (slot.waiting, without a call: this is hot)
            return waiter is not None and not waiter.done()
        return state in (State.INITIALIZING, State.RESPONDED)

    def withdraw(self) -> Invocation | None:
        """The assigned invocation, taken back before it was handed over (the environment could not start)."""
        pending, self.slot.pending = self.slot.pending, None
        return pending

    @property
    def idle(self) -> bool:
        return self.slot.pending is None and self.lifecycle.state in (State.READY, State.FROZEN)

    def answered_recently(self) -> bool:
        """Answered, its runtime expected back in `next` any moment: an invocation may wait for it."""
        return self.slot.answered_within_wait() and self.can_take()

    def _give_back(self, invocation: Invocation) -> None:
        """The runtime answered but is still not back in `next`: the waiting invocation goes elsewhere."""
        slot = self.slot
        slot.pending = None
        if not self._owner.place_elsewhere(self, invocation):
            slot.pending = invocation  # at the concurrency limit: it waits here for `next` or the timeout
            return
        self._ctx.timeline.record("reroute", self.id, function=self.config.name, request_id=invocation.request_id)

    async def stop(self, reason: str = "shutdown") -> None:
        """Shut the environment down (kill its process group, remove its cgroup); idempotent."""
        self.endings.shut_down(reason)
        await self.shutdown.wait()

    # ------------------------------------------------------------------------------------------ inspection
    async def wait_kernel_frozen(self, timeout_s: float = 5.0) -> bool:
        """Until the kernel has stopped every task of the group (freezing is asynchronous); False on timeout."""
        lifecycle = self.lifecycle
        return await self.freeze.wait_kernel_frozen(
            lambda: lifecycle.live and lifecycle.state is State.FROZEN, timeout_s
        )

    def describe(self) -> dict[str, object]:
        now = time.monotonic()
        reports = self.reports
        current = self.slot.current
        return {
            "id": self.id,
            "function": self.config.name,
            "pid": self.pid,
            "state": "frozen" if self.slot.suspended else self.lifecycle.state.public,
            "phase": self.lifecycle.state.value,
            "invocations": self.invocations,
            "freezer": self.freeze.backend,
            "kernel_frozen": self.lifecycle.live and self.freeze.kernel_frozen(),
            "age_s": round(now - self.created_s, 3),
            "frozen_s": round(self.freeze.frozen_s(now), 3),
            "virtual_offset_s": self.virtual.offset_s,
            "init_duration_ms": reports.init_duration_ms,
            "initialization_type": self.initialization_type,
            "max_memory_used_mb": reports.max_memory_mb,
            "current_request_id": current.request_id if current else None,
            "exit_status": self.processes.exit_status,
            "suspended": self.slot.suspended,
            "leaks": [
                {"request_id": k.request_id, "value": k.value, "from": k.source_request_id, "where": k.where}
                for k in reports.leaks
            ],
        }

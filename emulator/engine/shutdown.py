"""How an environment stops: it takes no more work, then, with extensions registered, goes through Lambda's
SHUTDOWN phase (SIGTERM to the runtime, the SHUTDOWN event to the extensions, a short grace) before its processes
are killed and its endpoint, cgroups and upstream listeners are released.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any

from runtime_api import RuntimeEndpoint

from ..errors import EnvironmentGone
from .context import EngineContext
from .deadline import Deadline
from .extensions import SHUTDOWN_GRACE_EXTERNAL_S, SHUTDOWN_GRACE_INTERNAL_S, ExtensionHub
from .freeze import FreezeControl
from .invocation import Outcome
from .lifecycle import Lifecycle
from .owner import BoundOwner, InitFailure
from .processes import EnvironmentProcesses
from .reports import Reports
from .slot import InvocationSlot

log = logging.getLogger("lambda_freeze.environment")


class Shutdown:
    def __init__(
        self,
        env_id: str,
        ctx: EngineContext,
        loop: asyncio.AbstractEventLoop,
        *,
        lifecycle: Lifecycle,
        slot: InvocationSlot,
        deadline: Deadline,
        freeze: FreezeControl,
        processes: EnvironmentProcesses,
        reports: Reports,
        extensions: ExtensionHub,
        owner: BoundOwner[Any],
        init_done: asyncio.Future[InitFailure | None],
    ):
        self._env_id = env_id
        self._ctx = ctx
        self._loop = loop
        self._lifecycle = lifecycle
        self._slot = slot
        self._deadline = deadline
        self._freeze = freeze
        self._processes = processes
        self._reports = reports
        self._extensions = extensions
        self._owner = owner
        self._init_done = init_done
        self.endpoint: RuntimeEndpoint | None = None  # the Runtime API endpoint, closed last but one
        self.stopped = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    @property
    def begun(self) -> bool:
        return self._task is not None

    def attached(self, pid: int) -> None:
        """A process of the environment has exec'd, in its cgroups. When the stop began while the process started,
        the group's kill came before it joined: it is killed now."""
        group = self._freeze.group
        assert group is not None
        group.attached(pid)
        if self._task is not None:
            group.kill()

    def begin(self, reason: str = "spindown") -> None:
        """Stop taking work and kill the environment: at once, or, with extensions registered, after Lambda's
        SHUTDOWN phase (``reason`` is the SHUTDOWN event's: spindown | timeout | failure). Idempotent."""
        if self._task is not None:
            return
        self._deadline.cancel()
        self._slot.cancel_give_back()
        group = self._freeze.group
        graceful = bool(self._extensions.extensions) and group is not None
        if group is not None and not graceful:
            group.kill()
        waiter = self._slot.waiter
        if waiter is not None and not waiter.done():
            waiter.set_exception(EnvironmentGone("this execution environment is shutting down"))
        slot = self._slot
        pending, slot.pending = slot.pending, None
        if pending is not None and pending is not slot.retry_of:
            self._owner.on_orphaned(pending)
        self._task = self._loop.create_task(self._stop(reason if graceful else None), name=f"stop {self._env_id}")

    async def wait(self) -> None:
        """Until the environment has stopped (when its stop has begun)."""
        if self._task is not None:
            await asyncio.shield(self._task)

    async def _shutdown_phase(self, reason: str) -> None:
        """SIGTERM to the runtime, SHUTDOWN to the extensions, then wait (2 s with external extensions, 0.5 s with
        internal ones only) for the runtime to exit and every extension to be back in `event/next` or gone."""
        group = self._freeze.group
        assert group is not None
        grace_s = SHUTDOWN_GRACE_EXTERNAL_S if self._extensions.any_external else SHUTDOWN_GRACE_INTERNAL_S
        if self._freeze.frozen:
            self._freeze.thaw()
        self._processes.terminate_runtime()
        targets = self._extensions.shutdown(reason, int((time.time() + grace_s) * 1000))
        self._ctx.timeline.record("shutdown", self._env_id, reason=reason, extensions=[t.name for t in targets])
        processes = self._processes

        def settled() -> bool:
            return processes.runtime_gone and not any(t.busy and not t.exited for t in targets)

        try:
            async with asyncio.timeout(grace_s):
                while not settled():
                    processes.progress.clear()
                    await processes.progress.wait()
        except TimeoutError:
            log.info("%s: SHUTDOWN phase ran out its %.1f s; killing", self._env_id, grace_s)
        group.kill()

    async def _stop(self, shutdown_reason: str | None) -> None:
        try:
            if shutdown_reason is not None:
                await self._shutdown_phase(shutdown_reason)
            self._extensions.close()
            await self._processes.release()
            self._reports.close()
            if self._freeze.group is not None:
                await self._freeze.group.remove()
            await self._processes.remove_memory_group()
            if self.endpoint is not None:
                await self.endpoint.close()
            await self._owner.close_upstreams()
        finally:
            if not self._init_done.done():
                self._init_done.set_result(InitFailure(Outcome.error("Runtime.ExitError", "stopped"), "error"))
            self._lifecycle.on_stopped()
            self.stopped.set()
            self._owner.on_stopped()  # the parts' last word to the owner: it lets go of the environment
            # Last: it may write a line to the sink, which must not keep the pool from knowing.
            self._processes.close_lines()

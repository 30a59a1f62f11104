"""How an environment stops: it takes no more work, then, with extensions registered, goes through Lambda's
SHUTDOWN phase (SIGTERM to the runtime, the SHUTDOWN event to the extensions, a short grace) before its processes
are killed and its endpoint, cgroups and upstream listeners are released.
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import time
from typing import TYPE_CHECKING, cast

from runtime_api import NextEvent, RuntimeEndpoint

from ..errors import EnvironmentGone
from .context import EngineContext
from .extensions import SHUTDOWN_GRACE_EXTERNAL_S, SHUTDOWN_GRACE_INTERNAL_S, ExtensionHub
from .freezer import FreezerGroup
from .invocation import Invocation, Outcome
from .lifecycle import Lifecycle
from .logs import LineSplitter
from .memory import PeakRssReader
from .memory_limit import MemoryGroup
from .owner import InitFailure, Owner
from .process import RuntimeProcess

if TYPE_CHECKING:
    from .environment import Environment

log = logging.getLogger("lambda_freeze.environment")

STOP_TIMEOUT_S = 5.0  # how long a SIGKILLed runtime may take to go (a task in uninterruptible sleep)


class Shutdown:
    """The ``Environment``'s stop: ``stop`` from the owner, ``_begin_stop`` from within."""

    id: str
    lifecycle: Lifecycle
    extensions: ExtensionHub
    current: Invocation | None
    pending: Invocation | None
    init_done: asyncio.Future[InitFailure | None]
    stopped: asyncio.Event
    _owner: Owner
    _ctx: EngineContext
    _loop: asyncio.AbstractEventLoop
    _retry_of: Invocation | None
    _next_waiter: asyncio.Future[NextEvent] | None
    _stop_task: asyncio.Task[None] | None
    _frozen_since: float | None
    _progress: asyncio.Event
    _exited: asyncio.Event
    _endpoint: RuntimeEndpoint | None
    _group: FreezerGroup | None
    _process: RuntimeProcess | None
    _extension_processes: dict[str, RuntimeProcess]
    _rss: PeakRssReader
    _memory: MemoryGroup | None
    _lines: LineSplitter

    if TYPE_CHECKING:

        @property
        def pid(self) -> int | None: ...

        def _thaw(self) -> None: ...

        def _cancel_timer(self) -> None: ...

        def _cancel_give_back(self) -> None: ...

        def _end_invocation(self, invocation: Invocation, *, status: str, error_type: str) -> None: ...

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

    def _begin_stop(self, reason: str = "spindown") -> None:
        """Stop taking work and kill the environment: at once, or, with extensions registered, after Lambda's
        SHUTDOWN phase (``reason`` is the SHUTDOWN event's: spindown | timeout | failure)."""
        if self._stop_task is not None:
            return
        self._cancel_timer()
        self._cancel_give_back()
        graceful = bool(self.extensions.extensions) and self._group is not None
        if self._group is not None and not graceful:
            self._group.kill()
        waiter = self._next_waiter
        if waiter is not None and not waiter.done():
            waiter.set_exception(EnvironmentGone("this execution environment is shutting down"))
        pending, self.pending = self.pending, None
        if pending is not None and pending is not self._retry_of:
            self._owner.on_orphaned(cast("Environment", self), pending)
        self._stop_task = self._loop.create_task(self._stop(reason if graceful else None), name=f"stop {self.id}")

    async def _shutdown_phase(self, reason: str) -> None:
        """SIGTERM to the runtime, SHUTDOWN to the extensions, then wait (2 s with external extensions, 0.5 s with
        internal ones only) for the runtime to exit and every extension to be back in `event/next` or gone."""
        assert self._group is not None
        grace_s = SHUTDOWN_GRACE_EXTERNAL_S if self.extensions.any_external else SHUTDOWN_GRACE_INTERNAL_S
        if self._frozen_since is not None:
            self._thaw()
        if self._process is not None and self._process.pid is not None and self._process.returncode is None:
            os.kill(self._process.pid, signal.SIGTERM)
        targets = self.extensions.shutdown(reason, int((time.time() + grace_s) * 1000))
        self._ctx.timeline.record("shutdown", self.id, reason=reason, extensions=[t.name for t in targets])

        def settled() -> bool:
            runtime_gone = self._process is None or self._process.returncode is not None
            return runtime_gone and not any(t.busy and not t.exited for t in targets)

        try:
            async with asyncio.timeout(grace_s):
                while not settled():
                    self._progress.clear()
                    await self._progress.wait()
        except TimeoutError:
            log.info("%s: SHUTDOWN phase ran out its %.1f s; killing", self.id, grace_s)
        self._group.kill()

    async def _stop(self, shutdown_reason: str | None) -> None:
        try:
            if shutdown_reason is not None:
                await self._shutdown_phase(shutdown_reason)
            self.extensions.close()
            for process in self._extension_processes.values():
                if process.returncode is None:
                    try:
                        async with asyncio.timeout(STOP_TIMEOUT_S):
                            await process.exited.wait()
                    except TimeoutError:
                        log.error("%s: extension pid %s did not die", self.id, process.pid)
                process.close()
            runtime = self._process  # None once a start that was under way failed
            if runtime is not None:
                if runtime.returncode is None:
                    try:
                        async with asyncio.timeout(STOP_TIMEOUT_S):
                            await self._exited.wait()
                    except TimeoutError:
                        log.error(
                            "%s: runtime pid %s did not die within %.0f s of SIGKILL", self.id, self.pid, STOP_TIMEOUT_S
                        )
                runtime.close()
            self._rss.close()
            if self._group is not None:
                await self._group.remove()
            if self._memory is not None:
                await self._memory.remove()
            if self._endpoint is not None:
                await self._endpoint.close()
            await self._owner.close_upstreams(cast("Environment", self))
        finally:
            if not self.init_done.done():
                self.init_done.set_result(InitFailure(Outcome.error("Runtime.ExitError", "stopped"), "error"))
            self.lifecycle.on_stopped()
            self.stopped.set()
            self._owner.on_stopped(cast("Environment", self))
            self._lines.close()  # last: it may write a line to the sink, which must not keep the pool from knowing

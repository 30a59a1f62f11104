"""A function and its pool of execution environments: which environment serves an invocation, cold starts, and
INIT retried inside the invocation when it failed.

Placement: the most recently idle environment (frozen or ready) first; else one whose runtime has answered and is
on its way back to ``next`` (the invocation waits for it there rather than paying a cold start); else a new
environment. One invocation per environment at a time.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
from collections.abc import Callable, Coroutine
from typing import Any

from runtime_api import RuntimeApiServer

from .config import FunctionConfig
from .environment import Environment, InitFailure
from .freezer import FreezerBackend
from .invocation import Invocation, Outcome
from .lifecycle import State
from .logs import LogSink

log = logging.getLogger("lambda_freeze.function")

_env_numbers = itertools.count(1)


class FunctionPool:
    def __init__(
        self,
        config: FunctionConfig,
        *,
        freezer: FreezerBackend,
        runtime_server: RuntimeApiServer,
        sink: LogSink,
    ):
        self.config = config
        self._freezer = freezer
        self._runtime_server = runtime_server
        self._sink = sink
        self.environments: dict[str, Environment] = {}
        self._idle: list[Environment] = []  # a stack: the most recently idle on top
        self._tasks: set[asyncio.Task[None]] = set()
        self._closing = False
        self.listeners: list[Callable[[Environment], None]] = []  # told of every new environment

    # ---------------------------------------------------------------------------------------------- invoke
    async def invoke(self, invocation: Invocation) -> Outcome:
        self._place(invocation)
        return await invocation.result

    def _place(self, invocation: Invocation) -> None:
        if self._closing:
            invocation.abandon(Outcome.error("ServiceException", "the emulator is shutting down"))
            return
        while self._idle:
            env = self._idle.pop()
            if env.can_take():
                env.assign(invocation)
                return
        for env in self.environments.values():
            if env.lifecycle.state is State.RESPONDED and env.can_take():
                env.assign(invocation)
                return
        self._spawn(pending=invocation)

    def _spawn(self, *, pending: Invocation | None = None, retry_of: Invocation | None = None) -> Environment:
        env = Environment(
            self.config,
            f"{self.config.name}-{next(_env_numbers)}",
            owner=self,
            freezer=self._freezer,
            runtime_server=self._runtime_server,
            sink=self._sink,
            retry_of=retry_of,
        )
        self.environments[env.id] = env
        if pending is not None:
            env.assign(pending)
        for listener in self.listeners:
            listener(env)
        self._track(self._start(env))
        return env

    async def _start(self, env: Environment) -> None:
        try:
            await env.start()
        except Exception:  # a boundary: the environment is dead, its invocation is routed or answered
            log.exception("%s: could not start", env.id)
            await env.stop("start failed")

    def _track(self, coro: Coroutine[Any, Any, None]) -> None:
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    # ----------------------------------------------------------------------------------- environment events
    def on_idle(self, env: Environment) -> None:
        if self._closing:
            return
        self._idle.append(env)

    def on_init_failed(self, env: Environment, failure: InitFailure, pending: Invocation | None) -> None:
        if pending is None:
            return
        if self._closing:
            pending.abandon(failure.outcome)
            return
        # Lambda retries INIT inside the invocation, under the function timeout.
        self._spawn(retry_of=pending)

    def on_orphaned(self, env: Environment, invocation: Invocation) -> None:
        self._place(invocation)

    def on_stopped(self, env: Environment) -> None:
        self.environments.pop(env.id, None)
        if env in self._idle:
            self._idle.remove(env)

    # ------------------------------------------------------------------------------------------------ stop
    async def close(self) -> None:
        self._closing = True
        while self.environments or self._tasks:
            await asyncio.gather(*(env.stop() for env in list(self.environments.values())), *list(self._tasks))

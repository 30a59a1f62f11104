"""A function and its pool of execution environments: placement, concurrency limits, cold starts, INIT retried
inside the invocation when it failed, recycling, and proactive INIT.

Placement: an idle environment (frozen or ready) chosen by the function's policy (``mru``, the default: the most
recently idle; ``lru``; ``random``); else one whose runtime has answered and is on its way back to ``next`` (the
invocation waits for it there rather than paying a cold start, as locally a caller can be faster than the
runtime's next ``next`` call; a runtime not back within ``slot.ANSWERED_WAIT_S`` is routed around, as on Lambda);
else a new environment, if the reserved and the account concurrency allow.
One invocation per environment at a time.

A new environment takes the function's standby when there is one (``standby``: its process, parked in its
cgroups before the exec, skips the fork and the cgroups' first writes), and the next standby is made once that
environment is idle (its first answer given) or gone, a moment later (``_STANDBY_AFTER_S``: not while the answer is
still on its way).
"""

from __future__ import annotations

import asyncio
import enum
import functools
import itertools
import logging
import os
import random
from collections.abc import Callable, Coroutine
from typing import TYPE_CHECKING, Any

from ..config.settings import NODE_RUNTIMES, PYTHON_RUNTIMES, FunctionConfig
from ..config.upstreams import Upstream, parse_upstream
from ..errors import LambdaFreezeError
from . import preparation, runtimes
from .context import EngineContext
from .environment import Environment
from .invocation import Invocation, Outcome
from .owner import InitFailure
from .standby import Standby, StandbyKeeper

if TYPE_CHECKING:
    from ..proxy import Proxy, ProxyEvent

# The next standby is made this long after the environment that adopted the last one is idle (or gone): made at once,
# its Python work on a spawner thread (the runtime's command, the cgroups, the park) held the GIL while the loop wrote
# the caller's answer and an in-process caller (a test) read it, which came 1.5-2 ms later; and a test that ends
# right after its invoke waited in its teardown for a standby nobody would take (its kernel's first cgroup.procs
# write, about 10 ms).
_STANDBY_AFTER_S = 0.01
log = logging.getLogger("lambda_freeze.function")

_env_numbers = itertools.count(1)
PREWARM_AT_ONCE = max(2, 2 * (os.cpu_count() or 1))


class TooManyRequests(LambdaFreezeError):
    error_type = "TooManyRequestsException"
    status = 429

    def __init__(self, reason: str):
        super().__init__("Rate Exceeded.", extra={"Reason": reason})
        self.reason = reason


class FunctionPool:
    def __init__(self, config: FunctionConfig, ctx: EngineContext):
        self.config = config
        self._ctx = ctx
        self.environments: dict[str, Environment] = {}
        self._idle: dict[Environment, asyncio.TimerHandle | None] = {}  # in the order they became idle
        self._timers: dict[Environment, asyncio.TimerHandle] = {}  # max-age timers
        self._retire_reasons: dict[Environment, str] = {}  # why a busy environment retires once idle
        self._tasks: set[asyncio.Task[None]] = set()
        self._preparation: asyncio.Task[None] | None = None  # the runtime's install and the build, once
        self._closing = False
        # The next environment's process, parked before its exec, under that environment's id.
        self.standby = StandbyKeeper(config.name, ctx, lambda: f"{self.config.name}-{next(_env_numbers)}")
        self._standby_owed: set[Environment] = set()  # claimed one: the next is made when they are idle or gone
        self._random = random.Random()
        self.capacity_freed = asyncio.Event()  # set when an environment becomes free or goes away
        self.listeners: list[Callable[[Environment], None]] = []  # told of every new environment
        # One fault proxy per upstream; every environment gets a listening port of its own on each.
        self.proxies: dict[str, Proxy] = {}
        if config.upstreams:
            from ..proxy import Proxy  # the proxy's modules load only for functions that have upstreams
        self._upstreams: dict[str, Upstream] = {}
        for upstream, address in config.upstreams.items():
            parsed = parse_upstream(address)
            assert parsed is not None  # checked by FunctionConfig
            self._upstreams[upstream] = parsed
            proxy = Proxy(
                parsed.host,
                parsed.port,
                name=f"{config.name}/{upstream}",
                close_mode=parsed.close,  # type: ignore[arg-type]
            )
            proxy.subscribe(self._record_proxy_event)
            self.proxies[upstream] = proxy

    def _record_proxy_event(self, event: ProxyEvent) -> None:
        detail = {k: v.value if isinstance(v, enum.Enum) else v for k, v in event.as_dict().items()}
        detail["event"] = detail.pop("kind")
        self._ctx.timeline.record("proxy", event.env_id or self.config.name, **detail)

    async def open_upstreams(self, env: Environment) -> dict[str, str]:
        variables = {}
        for upstream, proxy in self.proxies.items():
            port = await proxy.listen(env)
            variables.update(self._upstreams[upstream].variables(upstream, proxy.config.listen_host, port))
            env.virtual.add_listener(functools.partial(proxy.age, env.id))  # a virtual freeze ages its connections
        return variables

    async def close_upstreams(self, env: Environment) -> None:
        for proxy in self.proxies.values():
            await proxy.unlisten(env)

    # ---------------------------------------------------------------------------------------------- invoke
    async def invoke(self, invocation: Invocation) -> Outcome:
        """A synchronous invocation: placed now, or refused with 429 as Lambda throttles."""
        self.place(invocation)
        return await invocation.result

    def place(self, invocation: Invocation) -> None:
        if not self.try_place(invocation):
            raise TooManyRequests(self._throttle_reason() or "ReservedFunctionConcurrentInvocationLimitExceeded")

    def try_place(self, invocation: Invocation) -> bool:
        """Give the invocation to an environment, starting one if the limits allow; False when throttled."""
        if self._closing:
            invocation.abandon(Outcome.error("ServiceException", "the emulator is shutting down"))
            return True
        env = self._take_idle()
        if env is None:
            env = next(
                (e for e in self.environments.values() if not e.retire_requested and e.answered_recently()), None
            )
        if env is not None:
            env.assign(invocation)
            return True
        if self._throttle_reason() is not None:
            return False
        self._spawn(pending=invocation)
        return True

    def _throttle_reason(self) -> str | None:
        reserved = self.config.reserved_concurrency
        if reserved is not None and self.live_count() >= reserved:
            return "ReservedFunctionConcurrentInvocationLimitExceeded"
        if self._ctx.count_environments() >= self._ctx.account_concurrency:
            return "ConcurrentInvocationLimitExceeded"
        return None

    def live_count(self) -> int:
        return sum(1 for env in self.environments.values() if env.lifecycle.live and not env.retire_requested)

    def _take_idle(self) -> Environment | None:
        while self._idle:
            if self.config.placement == "mru":
                env = next(reversed(self._idle))
            elif self.config.placement == "lru":
                env = next(iter(self._idle))
            else:
                env = self._random.choice(list(self._idle))
            timer = self._idle.pop(env)
            if timer is not None:
                timer.cancel()
            if env.can_take():
                return env
        return None

    def _spawn(
        self,
        *,
        pending: Invocation | None = None,
        retry_of: Invocation | None = None,
        reason: str = "invoke",
    ) -> Environment:
        claimed = self.standby.claim()  # the standby's id, when there is one to take
        env_id = claimed or f"{self.config.name}-{next(_env_numbers)}"
        env = Environment(self.config, env_id, owner=self, ctx=self._ctx, retry_of=retry_of)
        self.environments[env.id] = env
        self._ctx.timeline.record("spawn", env.id, function=self.config.name, reason=reason)
        if pending is not None:
            env.assign(pending)
        if self.config.max_age_s is not None:
            self._timers[env] = asyncio.get_running_loop().call_later(
                self._jittered(self.config.max_age_s), self._age_reached, env
            )
        for listener in self.listeners:
            listener(env)
        self._track(self._start(env, with_standby=claimed is not None))
        return env

    def make_standby(self) -> None:
        """Park the next environment's process now (serving has begun: it costs no request anything)."""
        self.standby.want(self.config)

    def check(self) -> None:
        """Warn at once about a function that cannot start (Lambda itself only fails at the first invoke)."""
        problem = runtimes.bootstrap_problem(self.config)
        if problem is not None:
            log.warning("function %s will fail to start: %s", self.config.name, problem)

    def prewarm(self) -> None:
        """Proactive INIT: environments that initialise now, whether or not they are ever invoked.

        At most ``PREWARM_AT_ONCE`` run INIT at the same time: hundreds of runtimes starting together on a few
        cores would each take longer than INIT's 10 s limit, which Lambda, with a core per environment, never sees.
        """
        if self.config.prewarm:
            self._track(self._prewarm(self.config.prewarm))

    async def _prewarm(self, count: int) -> None:
        waves = asyncio.Semaphore(PREWARM_AT_ONCE)

        async def one() -> None:
            async with waves:
                # A later wave takes only what is left: invocations that came meanwhile started their own
                # environments, and those count against the reserved (and the account's) concurrency first.
                if not self._closing and self._throttle_reason() is None:
                    await asyncio.shield(self._spawn(reason="prewarm").init_done)

        await asyncio.gather(*(one() for _ in range(count)))

    async def prepared(self) -> None:
        """Once the function's runtime is installed and its dependencies are built (done once, shared by every
        cold start; a failure is every cold start's failure, with the message that says why)."""
        if self.config.runtime not in (*PYTHON_RUNTIMES, *NODE_RUNTIMES):
            return
        if self._preparation is None:
            self._preparation = asyncio.get_running_loop().create_task(preparation.prepare_async(self.config))
        await asyncio.shield(self._preparation)

    async def _start(self, env: Environment, *, with_standby: bool = False) -> None:
        # A standby still being made is taken while the environment prepares what needs no process (the function's
        # preparation, its Runtime API endpoint, its upstreams): the environment waits for it only to adopt it.
        taking: asyncio.Future[Standby | None] | None = None
        if with_standby and self.standby.made_already:  # the usual case: handed over now, nothing to wait for
            taking = asyncio.get_running_loop().create_future()
            taking.set_result(self.standby.take_made(self.config))
        elif with_standby:
            taking = asyncio.ensure_future(self.standby.take(self.config))
        adopted = False
        try:
            adopted = await self._start_environment(env, taking)
        finally:
            standby = await taking if taking is not None else None
            if standby is not None and not adopted:
                self.standby.give_back(standby)
        if with_standby:  # the next standby once this environment is idle (or gone): its first answer is not slowed
            self._standby_owed.add(env)

    async def _start_environment(self, env: Environment, standby: asyncio.Future[Standby | None] | None) -> bool:
        """Start ``env`` (with the standby ``standby`` resolves to, when given); whether it adopted the standby."""
        try:
            await self.prepared()
        except LambdaFreezeError as exc:  # no runtime, or a failed build: the function cannot start at all
            log.error("function %s cannot start: %s", self.config.name, exc.message)
            for invocation in (env.withdraw(), env.current):
                if invocation is not None:
                    invocation.abandon(Outcome.error("Runtime.InvalidEntrypoint", exc.message))
            await env.stop("start failed")
            return False
        try:
            return await env.start(standby)
        except Exception as exc:  # a boundary: the environment is dead, and its invocation answered
            log.exception("%s: could not start", env.id)
            # Answered here, not routed to another environment, which would fail the same way.
            for invocation in (env.withdraw(), env.current):
                if invocation is not None:
                    invocation.abandon(Outcome.error("Runtime.InvalidEntrypoint", f"cannot start: {exc}"))
            await env.stop("start failed")
            taken = standby.result() if standby is not None and standby.done() else None
            return env.freeze.group is not None and taken is not None and env.freeze.group is taken.group

    def _track(self, coro: Coroutine[Any, Any, None]) -> None:
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def _jittered(self, value: float) -> float:
        jitter = self.config.recycle_jitter
        return value * (1 + self._random.uniform(-jitter, jitter)) if jitter else value

    # ------------------------------------------------------------------------------------------- recycling
    def _age_reached(self, env: Environment) -> None:
        self._timers.pop(env, None)
        env.retire_requested = True
        if env in self._idle:
            self._retire(env, "max age")

    def retire_all(self, reason: str) -> int:
        """Retire every environment: an idle one now, a busy one when its invocation ends (none is cut short), so
        that the next invocation cold-starts (e.g. on changed code). Returns how many were told."""
        self.standby.renew(self.config)  # made from the code as it was: the next one sees the new code
        told = 0
        for env in list(self.environments.values()):
            if env.retire_requested or not env.lifecycle.live:
                continue
            told += 1
            env.retire_requested = True
            self._retire_reasons[env] = reason
            if env in self._idle:
                self._retire(env, reason)
        return told

    def _should_retire(self, env: Environment) -> str | None:
        if env.retire_requested:
            return self._retire_reasons.get(env, "max age")
        if self.config.max_invocations is not None and env.invocations >= self.config.max_invocations:
            return "max invocations"
        return None

    def _retire(self, env: Environment, reason: str) -> None:
        """Shut an environment down on the platform's schedule; with replace_before_retire, a replacement runs
        INIT beside it first (an environment that may never be invoked)."""
        timer = self._idle.pop(env, None)
        if timer is not None:
            timer.cancel()
        env.retire_requested = True
        self._ctx.timeline.record("retire", env.id, function=self.config.name, reason=reason)
        if self.config.replace_before_retire and not self._closing:
            replacement = self._spawn(reason=f"replaces {env.id}")
            self._track(self._retire_after(env, replacement, reason))
        else:
            self._track(env.stop(reason))

    async def _retire_after(self, env: Environment, replacement: Environment, reason: str) -> None:
        await asyncio.shield(replacement.init_done)
        await env.stop(reason)

    # ----------------------------------------------------------------------------------- environment events
    def _replace_standby(self, env: Environment) -> None:
        if env in self._standby_owed:
            self._standby_owed.discard(env)
            asyncio.get_running_loop().call_later(_STANDBY_AFTER_S, self._want_standby)

    def _want_standby(self) -> None:
        if not self._closing:
            self.standby.want(self.config)

    def on_idle(self, env: Environment) -> None:
        if self._closing:
            return
        self._replace_standby(env)
        reason = self._should_retire(env)
        if reason is not None:
            self._retire(env, reason)
            return
        timer = None
        if self.config.idle_timeout_s is not None:
            timer = asyncio.get_running_loop().call_later(
                self._jittered(self.config.idle_timeout_s), self._idle_expired, env
            )
        self._idle[env] = timer
        self.capacity_freed.set()

    def _idle_expired(self, env: Environment) -> None:
        if env in self._idle and env.idle:
            self._idle[env] = None
            self._retire(env, "idle timeout")

    def on_suspended(self, env: Environment) -> None:
        self.capacity_freed.set()

    def on_init_failed(self, env: Environment, failure: InitFailure, pending: Invocation | None) -> None:
        if pending is None:
            return
        if self._closing:
            pending.abandon(failure.outcome)
            return
        # Lambda retries INIT inside the invocation, under the function timeout.
        self._spawn(retry_of=pending, reason=f"INIT retry after {env.id}")

    def place_elsewhere(self, env: Environment, invocation: Invocation) -> bool:
        return self.try_place(invocation)

    def on_orphaned(self, env: Environment, invocation: Invocation) -> None:
        if not self.try_place(invocation):
            invocation.abandon(
                Outcome.error("TooManyRequestsException", f"environment {env.id} ended before it could run this")
            )

    def on_stopped(self, env: Environment) -> None:
        self._replace_standby(env)
        self.environments.pop(env.id, None)
        self._retire_reasons.pop(env, None)
        timer = self._idle.pop(env, None)
        if timer is not None:
            timer.cancel()
        age_timer = self._timers.pop(env, None)
        if age_timer is not None:
            age_timer.cancel()
        self._ctx.timeline.record("stopped", env.id, function=self.config.name, exit_status=env.exit_status)
        self.capacity_freed.set()

    # ------------------------------------------------------------------------------------------------ stop
    async def close(self) -> None:
        self._closing = True
        self.standby.stop_making()
        while self.environments or self._tasks:
            await asyncio.gather(*(env.stop() for env in list(self.environments.values())), *list(self._tasks))
        await self.standby.close()
        for proxy in self.proxies.values():
            await proxy.close()

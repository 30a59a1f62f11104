"""A function's standby: the next environment's process, made ahead of need so that a cold start does not wait for
the fork, the cgroups' creation and the kernel's first ``cgroup.procs`` write.

A standby is a process forked on a spawner thread, joined to cgroups of its own (the freezer's and the memory
limit's) and, with ``lambda_paths``, to its private mount namespace, then parked in ``/bin/sh`` reading its stdin
before the runtime client's exec (``process.park``). Nothing of the function runs in it: INIT and its side effects
happen only when an environment adopts it and releases it, as Lambda would run them. An environment's ``Init
Duration`` counts from the environment's creation, so the time a standby spent parked is never part of it.

An emulator that serves functions not known yet (the pytest plugin's next test's) may keep a ``Spare``: a process
parked the same way in cgroups of no function yet, with no memory limit below Lambda's largest and no mounts. The
first keeper that wants a standby makes it from the spare (the function's memory limit written, its shell moved into
the function's mount namespace), so that the kernel's first ``cgroup.procs`` write, an RCU grace period of 1-10 ms,
is paid before the function is known.

The keeper holds at most one standby per function, made once serving has begun and again after each adoption once
the adopting environment is idle or gone (off its first invocation's critical path). A standby is made under the id of
the environment that will adopt it (cgroup v2 cannot rename a cgroup; a spare keeps the name it was made with): a
new environment ``claim``s that id at once, then ``take``s the standby, waiting for it if it is still being made.
One made for settings that no longer hold, or not adopted, is let go. Closing the keeper kills its standby and
removes its cgroups.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from dataclasses import dataclass

from ..config.settings import FunctionConfig
from ..errors import LambdaFreezeError
from . import lambda_paths, runtimes
from .context import EngineContext
from .freezer import FreezerGroup
from .lambda_paths import Mounts
from .memory_limit import MemoryGroup
from .process import _SPAWNER, Parked, park
from .spare import Spare, remove_now
from .spare import discard as discard_spare

log = logging.getLogger("lambda_freeze.standby")


@dataclass
class Standby:
    """A parked process and the cgroups it joined; an environment adopts all of it at once."""

    name: str  # the id of the environment that will adopt it: its cgroups carry that name, as any environment's
    made_for: tuple[object, ...]  # the settings its cgroups and mounts were made with (``_settings``)
    group: FreezerGroup
    memory: MemoryGroup | None
    mounts: Mounts | None
    parked: Parked
    generation: int  # the keeper's when it was made: an older one has an outdated view of the code (``renew``)
    # What the adopting environment would otherwise work out after the caller's request, made at park time from the
    # function's settings alone: the runtime's command line and its environment before the environment's own part
    # (``runtimes.completed_environment``). Nothing of it depends on the invocation.
    argv: list[str]
    base_env: dict[str, str]

    async def discard(self) -> None:
        """Kill the parked process and remove its cgroups."""
        await asyncio.get_running_loop().run_in_executor(None, self.parked.discard)
        self.group.kill()
        await self.group.remove()
        if self.memory is not None:
            await self.memory.remove()


def _worked_out(config: FunctionConfig) -> tuple[list[str], dict[str, str], Mounts | None]:
    """What a standby's environment would work out after the caller's request from the function's settings alone: the
    runtime's command line, its environment but for the environment's own part, and its view of the paths
    (lambda_paths decides on the runtime's command; its first call probes the kernel with a child process)."""
    argv = runtimes.command(config)
    base_env = runtimes.base_environment(config)
    mounts = lambda_paths.for_function(config, argv, runtimes.completed_environment(config, base_env, runtime_api=""))
    return argv, base_env, mounts


def _settings(config: FunctionConfig) -> tuple[object, ...]:
    return (config.code_dir, config.layers, config.lambda_paths, config.debug_port, config.memory_mb)


class StandbyKeeper:
    """At most one standby for a function: made in the background, claimed and taken by the next new environment."""

    def __init__(self, function: str, ctx: EngineContext, next_id: Callable[[], str]):
        self._function = function
        self._ctx = ctx
        self._next_id = next_id  # the function's environment ids: a standby is made under the next one
        self._ready: Standby | None = None
        self._making: asyncio.Task[Standby | None] | None = None
        self._reserved: str | None = None  # the id of the standby ready or being made
        self._claimed = False
        self._closing = False
        self._letting_go: set[asyncio.Task[None]] = set()
        self._generation = 0
        self._config: FunctionConfig | None = None  # the settings the last standby was wanted for
        self.made = 0  # standbys made so far (the tests read it)

    @property
    def pid(self) -> int | None:
        """The parked process's, when a standby is ready."""
        return self._ready.parked.pid if self._ready is not None else None

    def want(self, config: FunctionConfig) -> None:
        """Make a standby for ``config`` (the function's settings now) in the background, unless one is ready or
        being made, or ``config`` says no standby."""
        self._config = config
        if not config.standby or self._closing or self._reserved is not None:
            return
        self._reserved = self._next_id()
        self._claimed = False
        self._making = asyncio.get_running_loop().create_task(
            self._make(self._reserved, config), name=f"standby {self._reserved}"
        )
        self._making.add_done_callback(self._made)

    def _made(self, task: asyncio.Task[Standby | None]) -> None:
        self._making = None
        standby = None if task.cancelled() else task.result()
        if standby is None:
            if not self._claimed:
                self._reserved = None
            return
        if self._closing:
            self._let_go(standby)
            return
        if standby.generation != self._generation and not self._claimed:  # renewed while it was made
            self._let_go(standby)
            self._reserved = None
            if self._config is not None:
                self.want(self._config)
            return
        self._ready = standby
        self._ctx.timeline.record(
            "standby", standby.name, function=self._function, event="parked", pid=standby.parked.pid
        )

    def _let_go(self, standby: Standby) -> None:
        self._ctx.timeline.record("standby", standby.name, function=self._function, event="let go")
        task = asyncio.get_running_loop().create_task(standby.discard(), name=f"let go {standby.name}")
        self._letting_go.add(task)
        task.add_done_callback(self._letting_go.discard)

    async def _make(self, name: str, config: FunctionConfig) -> Standby | None:
        generation = self._generation
        spare = self._ctx.take_spare()
        if spare is not None:
            standby = await self._from_spare(spare, config, generation)
            if standby is not None:
                return standby
        memory_limiter = self._ctx.memory
        def make() -> Standby:  # off the loop: cgroup directories, the fork, the kernel's first cgroup.procs writes
            argv, base_env, mounts = _worked_out(config)
            group = self._ctx.freezer.group(name)
            memory = None
            try:
                if memory_limiter is not None:
                    memory = memory_limiter.group(name, config.memory_mb * 1024 * 1024)
                paths = (*group.attach_paths, *((memory.attach_path,) if memory is not None else ()))
                parked = park(config.code_dir, paths, mounts)
            except BaseException:
                remove_now(group, memory)
                raise
            return Standby(name, _settings(config), group, memory, mounts, parked, generation, argv, base_env)

        try:
            standby = await asyncio.get_running_loop().run_in_executor(_SPAWNER, make)
        except LambdaFreezeError as exc:  # no interpreter, no Node.js: the environment will say so itself
            log.info("%s: no standby process (%s)", config.name, exc.message)
            return None
        except OSError as exc:  # e.g. out of processes: cold starts go on the ordinary way
            log.warning("%s: no standby process (%s); new environments start their own", config.name, exc)
            return None
        self.made += 1
        log.info("%s: standby process %d parked in %s", config.name, standby.parked.pid, name)
        return standby

    async def _from_spare(self, spare: Spare, config: FunctionConfig, generation: int) -> Standby | None:
        """The standby made of the emulator's spare: the function's memory limit written, its shell given the
        function's mounts (if any). None (and the spare let go) if it cannot be: a standby is then made as usual."""
        made = await spare.take()
        if made is None:
            return None
        group, memory, parked = made

        def adapt() -> Standby:
            argv, base_env, mounts = _worked_out(config)
            if memory is not None:
                memory.set_limit(config.memory_mb * 1024 * 1024)
            if mounts is not None:
                parked.enter(mounts)
            return Standby(spare.name, _settings(config), group, memory, mounts, parked, generation, argv, base_env)

        try:
            standby = await asyncio.get_running_loop().run_in_executor(_SPAWNER, adapt)
        except (LambdaFreezeError, OSError) as exc:
            log.info("%s: the spare process is not used (%s)", config.name, getattr(exc, "message", exc))
            await discard_spare(group, memory, parked)
            return None
        self.made += 1
        log.info("%s: standby process %d (the spare) in %s", config.name, parked.pid, spare.name)
        return standby

    def claim(self) -> str | None:
        """For a new environment: the id of the standby ready or being made, which it then ``take``s; None when
        there is none to claim."""
        if self._closing or self._reserved is None or self._claimed:
            return None
        self._claimed = True
        return self._reserved

    async def take(self, config: FunctionConfig) -> Standby | None:
        """The claimed standby, for a new environment of ``config``; one being made is waited for (it is further
        along than a start from nothing). None when its making failed, or it was made for other settings (then it
        is let go)."""
        making = self._making
        if making is not None:
            await asyncio.wait([making])  # its callback has run when this returns
        return self.take_made(config)

    @property
    def made_already(self) -> bool:
        """Whether the claimed standby is made (or failed to be): ``take_made`` hands it over without waiting."""
        return self._making is None

    def take_made(self, config: FunctionConfig) -> Standby | None:
        """``take`` for a standby made already (``made_already``): at once, so that the environment adopting it
        uses what it worked out at park time (``Environment.start``)."""
        standby, self._ready = self._ready, None
        self._reserved, self._claimed = None, False
        if standby is not None and (
            standby.made_for != _settings(config) or standby.generation != self._generation or self._closing
        ):
            self._let_go(standby)
            return None
        return standby

    def renew(self, config: FunctionConfig) -> None:
        """The function's code changed (hot reload): a standby made before holds the old code directory (its working
        directory, its mount on /var/task) and is let go; a new one is made."""
        self._generation += 1
        if self._ready is not None and not self._claimed:
            standby, self._ready = self._ready, None
            self._reserved = None
            self._let_go(standby)
        self.want(config)

    def give_back(self, standby: Standby) -> None:
        """Taken but not adopted (the environment ended first): let go, its cgroups named after that environment."""
        self._let_go(standby)

    def stop_making(self) -> None:
        """No standby is made or claimed from now on (the function is closing)."""
        self._closing = True

    async def close(self) -> None:
        """Kill the standby and remove its cgroups (one being made too)."""
        self._closing = True
        if self._making is not None:
            await asyncio.wait([self._making])  # its callback lets it go
        standby, self._ready = self._ready, None
        if standby is not None:
            self._let_go(standby)
        while self._letting_go:
            await asyncio.wait(list(self._letting_go))

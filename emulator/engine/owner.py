"""What an execution environment and the pool that owns it say to each other: the ``Owner`` protocol the pool
implements, ``BoundOwner`` (the owner as one environment's parts speak to it), and ``InitFailure``, which tells the
pool why INIT did not complete.

The protocol is generic in the environment's type, so this module sits below ``environment`` and names nothing
above it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Generic, Protocol, TypeVar

from .invocation import Invocation, Outcome

Env = TypeVar("Env")
Env_contra = TypeVar("Env_contra", contravariant=True)


@dataclass(frozen=True, slots=True)
class InitFailure:
    """Why INIT did not complete: what an invocation that retries INIT and fails again would answer."""

    outcome: Outcome
    status: str  # "error" | "timeout"


class Owner(Protocol[Env_contra]):
    """What an environment tells the pool that owns it."""

    def on_idle(self, env: Env_contra) -> None:
        """The runtime waits in ``next``; the owner may ``assign`` an invocation right now (then no freeze)."""

    def on_init_failed(self, env: Env_contra, failure: InitFailure, pending: Invocation | None) -> None: ...

    def on_orphaned(self, env: Env_contra, invocation: Invocation) -> None:
        """An invocation assigned but never handed over: the environment ended first. Route it elsewhere."""

    def place_elsewhere(self, env: Env_contra, invocation: Invocation) -> bool:
        """An invocation waited too long for ``env``: another environment takes it if the limits allow (else False,
        and it goes on waiting)."""
        return False

    def on_stopped(self, env: Env_contra) -> None: ...

    def on_suspended(self, env: Env_contra) -> None:
        """A timed-out environment was frozen mid-handler (reset_on_timeout off): reusable as it is."""

    async def open_upstreams(self, env: Env_contra) -> dict[str, str]:
        """Listen for this environment on each upstream's fault proxy; the variables that point at it."""
        return {}

    async def close_upstreams(self, env: Env_contra) -> None: ...


class BoundOwner(Generic[Env]):
    """The owner as the parts of one environment speak to it: each call names that environment, so the parts need
    no reference to the environment itself.

    It is the one reference from the parts back to their environment; ``release`` drops it once the owner has been
    told the environment stopped, so reference counting frees a stopped environment at once.
    """

    __slots__ = ("_env", "_owner")

    def __init__(self, owner: Owner[Env], env: Env):
        self._owner = owner
        self._env: Env | None = env

    def _named(self) -> Env:
        env = self._env
        if env is None:
            raise RuntimeError("the environment has stopped: its owner is told nothing more")
        return env

    def on_idle(self) -> None:
        self._owner.on_idle(self._named())

    def on_init_failed(self, failure: InitFailure, pending: Invocation | None) -> None:
        self._owner.on_init_failed(self._named(), failure, pending)

    def on_orphaned(self, invocation: Invocation) -> None:
        self._owner.on_orphaned(self._named(), invocation)

    def place_elsewhere(self, invocation: Invocation) -> bool:
        return self._owner.place_elsewhere(self._named(), invocation)

    def on_suspended(self) -> None:
        self._owner.on_suspended(self._named())

    async def open_upstreams(self) -> dict[str, str]:
        return await self._owner.open_upstreams(self._named())

    async def close_upstreams(self) -> None:
        await self._owner.close_upstreams(self._named())

    def on_stopped(self) -> None:
        env = self._named()
        self._env = None
        self._owner.on_stopped(env)

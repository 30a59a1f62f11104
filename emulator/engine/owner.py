"""What an execution environment and the pool that owns it say to each other: the ``Owner`` protocol the pool
implements, and ``InitFailure``, which tells the pool why INIT did not complete.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

from .invocation import Invocation, Outcome

if TYPE_CHECKING:
    from .environment import Environment


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

    def place_elsewhere(self, env: Environment, invocation: Invocation) -> bool:
        """An invocation waited too long for ``env``: another environment takes it if the limits allow (else False,
        and it goes on waiting)."""
        return False

    def on_stopped(self, env: Environment) -> None: ...

    def on_suspended(self, env: Environment) -> None:
        """A timed-out environment was frozen mid-handler (reset_on_timeout off): reusable as it is."""

    async def open_upstreams(self, env: Environment) -> dict[str, str]:
        """Listen for this environment on each upstream's fault proxy; the variables that point at it."""
        return {}

    async def close_upstreams(self, env: Environment) -> None: ...

"""The virtual clock call's engine side (``runtime_api.clock.ClockBackend``): finds the environment among the served
functions and moves its clock, answering in Lambda's error terms."""

from __future__ import annotations

from collections.abc import Mapping

from runtime_api.errors import HttpApiError

from ..engine.pool import FunctionPool
from ..errors import InvalidStateTransition


class VirtualClocks:
    def __init__(self, functions: Mapping[str, FunctionPool]):
        self._functions = functions

    def advance_clock(self, env_id: str, seconds: float) -> Mapping[str, object]:
        env = next((p.environments[env_id] for p in self._functions.values() if env_id in p.environments), None)
        if env is None:
            raise HttpApiError(404, "ResourceNotFoundException", f"Environment not found: {env_id}")
        if env.virtual.clock is None:
            raise HttpApiError(
                409,
                "ResourceConflictException",
                f"function {env.config.name} runs in real time: serve it with --virtual-time (or virtual_time = true)",
            )
        try:
            env.advance_clock(seconds)
        except InvalidStateTransition as exc:  # not frozen: its runtime reads the clocks right now
            raise HttpApiError(409, "ResourceConflictException", str(exc)) from None
        return env.describe()

"""What every function pool and environment of one emulator shares."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from runtime_api import RuntimeApiServer

from .freezer import FreezerBackend
from .logs import LogSink
from .memory_limit import MemoryLimiter
from .spare import Spare
from .timeline import Timeline


@dataclass
class EngineContext:
    freezer: FreezerBackend
    runtime_server: RuntimeApiServer
    sink: LogSink
    timeline: Timeline = field(default_factory=lambda: Timeline())
    endpoint_url: str = ""  # the Invoke API, given to functions as AWS_ENDPOINT_URL_LAMBDA
    account_concurrency: int = 1000
    count_environments: Callable[[], int] = lambda: 0  # live environments across all functions
    memory: MemoryLimiter | None = None  # enforces memory sizes, where this machine lets it
    spare: Spare | None = None  # a parked process for the next function that wants a standby (``keep_spare``)

    def take_spare(self) -> Spare | None:
        spare, self.spare = self.spare, None
        return spare

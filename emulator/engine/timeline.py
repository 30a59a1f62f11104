"""The timeline: every state change of every environment, and other engine events, in one bounded record."""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .invocation import Invocation, Outcome

MAX_EVENTS = 100_000  # about 35 MB: kept when the history is read (a trace written on exit, a scenario report)
RECENT_EVENTS = 1_000  # kept when nothing reads the history (serve without --trace): a long run stays flat


@dataclass(frozen=True, slots=True)
class TimelineEvent:
    at_s: float  # time.time()
    monotonic_s: float
    kind: str  # "state", "invoke", "async", "proxy", ...
    subject: str  # environment id, function name, connection id
    detail: dict[str, Any] = field(default_factory=dict)


class Timeline:
    def __init__(self, limit: int = MAX_EVENTS):
        self.events: deque[TimelineEvent] = deque(maxlen=limit)
        self.listeners: list[Callable[[TimelineEvent], None]] = []

    def record(self, kind: str, subject: str, /, **detail: Any) -> TimelineEvent:
        event = TimelineEvent(time.time(), time.monotonic(), kind, subject, detail)
        self.events.append(event)
        for listener in self.listeners:
            listener(event)
        return event


MESSAGE_MAX = 300  # characters of an error message kept in an "invoke" record


def record_outcome(timeline: Timeline, invocation: Invocation, outcome: Outcome, function: str, **extra: Any) -> None:
    """An ``invoke`` record: which environment answered which request, and how (``error_type`` None is success)."""
    timeline.record(
        "invoke",
        invocation.env_id or function,
        function=function,
        request_id=invocation.request_id,
        started_s=invocation.started_s,
        cold_start=invocation.cold_start,
        error_type=outcome.error_type,
        message=None if outcome.ok else outcome.message[:MESSAGE_MAX],
        **extra,
    )

"""The execution environment's lifecycle: one transition table, one checked ``_transition``, event methods.

Pure state, no processes or sockets, so every state × event pair is unit-tested. The environment drives it and
performs the side effects (freeze, thaw, kill) that a successful transition calls for.
"""

from __future__ import annotations

import enum
import logging
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass

from ..errors import InvalidStateTransition

log = logging.getLogger("lambda_freeze.lifecycle")


class State(enum.Enum):
    INITIALIZING = "initializing"  # runtime started, not yet in its first `next`
    READY = "ready"  # runtime waiting in `next`, no event, not frozen (momentary, or freezer "none")
    FROZEN = "frozen"  # runtime waiting in `next`, its process group frozen
    INVOKING = "invoking"  # event handed over, no response yet
    RESPONDED = "responded"  # response or error posted, runtime not yet back in `next`
    STOPPING = "stopping"  # process group being killed
    STOPPED = "stopped"  # process gone, cgroup removed

    @property
    def public(self) -> str:
        """The name the inspection API shows: initializing | ready | invoking | frozen | stopped."""
        return _PUBLIC[self]


_PUBLIC = {
    State.INITIALIZING: "initializing",
    State.READY: "ready",
    State.FROZEN: "frozen",
    State.INVOKING: "invoking",
    State.RESPONDED: "invoking",
    State.STOPPING: "stopped",
    State.STOPPED: "stopped",
}

TRANSITIONS: dict[State, frozenset[State]] = {
    State.INITIALIZING: frozenset({State.READY, State.STOPPING}),
    State.READY: frozenset({State.FROZEN, State.INVOKING, State.STOPPING}),
    State.FROZEN: frozenset({State.INVOKING, State.STOPPING}),
    State.INVOKING: frozenset({State.RESPONDED, State.STOPPING}),
    State.RESPONDED: frozenset({State.READY, State.STOPPING}),
    State.STOPPING: frozenset({State.STOPPED}),
    State.STOPPED: frozenset(),
}

LIVE = frozenset(TRANSITIONS) - {State.STOPPING, State.STOPPED}


@dataclass(frozen=True, slots=True)
class Transition:
    at_s: float  # time.time()
    monotonic_s: float
    old: State
    new: State
    event: str


class Lifecycle:
    """The state of one environment. Event methods are the only way in; each refuses what its state forbids."""

    def __init__(self, name: str, *, history: int = 64, clock: Callable[[], float] = time.monotonic):
        self.name = name
        self.state = State.INITIALIZING
        self._clock = clock
        self.history: deque[Transition] = deque(maxlen=history)
        self.entered_s = clock()
        self.listeners: list[Callable[[Transition], None]] = []

    def _transition(self, new: State, event: str) -> None:
        old = self.state
        if new not in TRANSITIONS[old]:
            raise InvalidStateTransition(
                f"State transition from {old.name} to {new.name} failed for runtime. Error: '{event}' is not "
                f"allowed while the environment is {old.value}"
            )
        now = self._clock()
        self.state = new
        self.entered_s = now
        record = Transition(time.time(), now, old, new, event)
        self.history.append(record)
        if log.isEnabledFor(logging.DEBUG):
            log.debug("%s: %s -> %s (%s)", self.name, old.value, new.value, event)
        for listener in self.listeners:
            listener(record)
        if new is State.STOPPED:
            self.listeners.clear()  # the last word: listeners are bound methods of the environment, a cycle

    # Runtime API events ------------------------------------------------------------------------------------
    def on_next(self) -> None:
        """The runtime is waiting for an event: INIT is over, or the last invocation is."""
        self._transition(State.READY, "next")

    def on_response(self) -> None:
        self._transition(State.RESPONDED, "response")

    def on_error(self) -> None:
        self._transition(State.RESPONDED, "error")

    def on_init_error(self) -> None:
        if self.state is not State.INITIALIZING:
            raise InvalidStateTransition(f"init/error is only allowed during INIT, not while {self.state.value}")
        self._transition(State.STOPPING, "init_error")

    # Engine events -----------------------------------------------------------------------------------------
    def on_freeze(self) -> None:
        self._transition(State.FROZEN, "freeze")

    def on_invoke(self) -> None:
        """An event is handed over (thawing first when frozen)."""
        self._transition(State.INVOKING, "invoke")

    def on_deadline(self) -> None:
        """INIT or the invocation ran out of time."""
        if self.state not in (State.INITIALIZING, State.INVOKING, State.RESPONDED):
            raise InvalidStateTransition(f"no deadline runs while {self.state.value}")
        self._transition(State.STOPPING, "deadline")

    def on_exit(self) -> None:
        """The runtime process exited (or was killed from outside)."""
        self._transition(State.STOPPING, "exit")

    def on_shutdown(self) -> None:
        self._transition(State.STOPPING, "shutdown")

    def on_stopped(self) -> None:
        self._transition(State.STOPPED, "stopped")

    @property
    def live(self) -> bool:
        return self.state in LIVE

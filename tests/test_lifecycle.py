"""Every state × event pair of the execution environment's lifecycle (no processes, no sockets)."""

from __future__ import annotations

import itertools

import pytest

from emulator.engine.lifecycle import TRANSITIONS, Lifecycle, State
from emulator.errors import InvalidStateTransition

S = State
EVENTS = {
    "on_next": {S.INITIALIZING: S.READY, S.RESPONDED: S.READY},
    "on_response": {S.INVOKING: S.RESPONDED},
    "on_error": {S.INVOKING: S.RESPONDED},
    "on_init_error": {S.INITIALIZING: S.STOPPING},
    "on_freeze": {S.READY: S.FROZEN},
    "on_invoke": {S.READY: S.INVOKING, S.FROZEN: S.INVOKING},
    "on_deadline": {S.INITIALIZING: S.STOPPING, S.INVOKING: S.STOPPING, S.RESPONDED: S.STOPPING},
    "on_exit": {s: S.STOPPING for s in (S.INITIALIZING, S.READY, S.FROZEN, S.INVOKING, S.RESPONDED)},
    "on_shutdown": {s: S.STOPPING for s in (S.INITIALIZING, S.READY, S.FROZEN, S.INVOKING, S.RESPONDED)},
    "on_stopped": {S.STOPPING: S.STOPPED},
}


def at(state: State) -> Lifecycle:
    lifecycle = Lifecycle("env")
    lifecycle.state = state
    return lifecycle


@pytest.mark.parametrize(("state", "event"), list(itertools.product(State, EVENTS)))
def test_state_event_pair(state, event):
    lifecycle = at(state)
    expected = EVENTS[event].get(state)
    if expected is None:
        with pytest.raises(InvalidStateTransition):
            getattr(lifecycle, event)()
        assert lifecycle.state is state  # a refused event changes nothing
        assert not lifecycle.history
    else:
        getattr(lifecycle, event)()
        assert lifecycle.state is expected
        (record,) = lifecycle.history
        assert (record.old, record.new) == (state, expected)


def test_every_allowed_transition_has_an_event():
    reachable = {(old, new) for table in EVENTS.values() for old, new in table.items()}
    declared = {(old, new) for old, targets in TRANSITIONS.items() for new in targets}
    assert reachable == declared


def test_a_whole_life_is_recorded_in_order():
    lifecycle = Lifecycle("env", clock=iter(range(100)).__next__)
    seen = []
    lifecycle.listeners.append(lambda t: seen.append(t.event))
    for event in (
        "on_next",
        "on_freeze",
        "on_invoke",
        "on_response",
        "on_next",
        "on_invoke",
        "on_error",
        "on_next",
        "on_shutdown",
        "on_stopped",
    ):
        getattr(lifecycle, event)()
    assert seen == ["next", "freeze", "invoke", "response", "next", "invoke", "error", "next", "shutdown", "stopped"]
    assert [t.monotonic_s for t in lifecycle.history] == list(range(1, 11))
    assert lifecycle.state is State.STOPPED and not lifecycle.live
    assert not lifecycle.listeners  # let go once stopped: they are the environment's bound methods


def test_public_state_names():
    assert {s.public for s in State} == {"initializing", "ready", "invoking", "frozen", "stopped"}

"""The lifecycle's record of itself: a bounded history of immutable transitions, each logged at DEBUG."""

from __future__ import annotations

import dataclasses
import logging

import pytest

from emulator.engine.lifecycle import Lifecycle, State


def cycle(lifecycle: Lifecycle) -> None:
    """One warm invocation: invoke, respond, back in next."""
    lifecycle.on_invoke()
    lifecycle.on_response()
    lifecycle.on_next()


def test_the_history_keeps_the_last_64_transitions():
    lifecycle = Lifecycle("env")
    lifecycle.on_next()
    for _ in range(30):
        cycle(lifecycle)  # 1 + 90 transitions
    assert len(lifecycle.history) == 64
    assert [t.event for t in list(lifecycle.history)[-3:]] == ["invoke", "response", "next"]
    assert lifecycle.history[0].event == "next"  # transitions 28 to 91 (the first 27 are gone); 28 is a next


def test_a_transition_cannot_be_rewritten_by_a_listener():
    lifecycle = Lifecycle("env")
    seen = []
    lifecycle.listeners.append(seen.append)
    lifecycle.on_next()
    (transition,) = seen
    with pytest.raises(dataclasses.FrozenInstanceError):
        transition.new = State.STOPPED  # type: ignore[misc]
    assert lifecycle.history[-1].new is State.READY


def test_each_transition_is_logged_at_debug(caplog):
    lifecycle = Lifecycle("env-7")
    with caplog.at_level(logging.DEBUG, logger="lambda_freeze.lifecycle"):
        lifecycle.on_next()
        lifecycle.on_freeze()
    assert [r.getMessage() for r in caplog.records if r.name == "lambda_freeze.lifecycle"] == [
        "env-7: initializing -> ready (next)",
        "env-7: ready -> frozen (freeze)",
    ]

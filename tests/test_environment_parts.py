"""The execution environment's parts, each alone: the invocation slot and the runtime's answers, the deadline, the
freeze control, and the bound owner. Unit tests: no process and no socket."""

from __future__ import annotations

import asyncio
import dataclasses
import itertools
import random
import re
import time
import uuid

import pytest
import uvloop

from emulator.engine.deadline import Deadline
from emulator.engine.freeze import FreezeControl
from emulator.engine.freezer.signals import NoFreezeBackend
from emulator.engine.invocation import Invocation, Outcome, new_request_id, new_trace_id
from emulator.engine.lifecycle import Lifecycle, State
from emulator.engine.owner import BoundOwner, InitFailure
from emulator.engine.slot import ANSWERED_WAIT_S, InvocationSlot
from emulator.errors import InvalidRequestID, InvalidStateTransition


def _invoking(slot: InvocationSlot, lifecycle: Lifecycle) -> Invocation:
    """The slot's environment past INIT, with an invocation handed over."""
    invocation = Invocation(b"{}", "arn:aws:lambda:us-east-1:000000000000:function:fn")
    lifecycle.on_next()
    lifecycle.on_invoke()
    slot.current = invocation
    return invocation


@pytest.mark.asyncio
async def test_an_answer_is_checked_against_the_state_first_then_the_request_id():
    lifecycle = Lifecycle("e1")
    slot = InvocationSlot(lifecycle, asyncio.get_running_loop(), retry_of=None)
    with pytest.raises(InvalidStateTransition, match="no invocation is waiting for an answer while"):
        slot.respond("any", b"{}", None)  # still INITIALIZING: RAPID's 403 comes before the id is looked at
    invocation = _invoking(slot, lifecycle)
    with pytest.raises(InvalidRequestID):
        slot.respond("not-" + invocation.request_id, b"{}", None)
    assert lifecycle.state is State.INVOKING and not invocation.result.done()
    slot.respond(invocation.request_id, b'{"ok": 1}', None)
    assert lifecycle.state is State.RESPONDED
    assert invocation.result.result().payload == b'{"ok": 1}'
    with pytest.raises(InvalidStateTransition, match=f"request {invocation.request_id} was already answered"):
        slot.respond_error(invocation.request_id, b"{}", "Unhandled")


@pytest.mark.asyncio
async def test_a_runtime_error_answers_with_the_type_from_the_body():
    lifecycle = Lifecycle("e1")
    slot = InvocationSlot(lifecycle, asyncio.get_running_loop(), retry_of=None)
    invocation = _invoking(slot, lifecycle)
    slot.respond_error(invocation.request_id, b'{"errorType": "ValueError", "errorMessage": "no"}', None)
    assert lifecycle.state is State.RESPONDED
    assert invocation.result.result().error_type == "ValueError"


@pytest.mark.asyncio
async def test_the_runtime_s_content_type_reaches_the_caller_and_json_is_the_default():
    lifecycle = Lifecycle("e1")
    slot = InvocationSlot(lifecycle, asyncio.get_running_loop(), retry_of=None)
    invocation = _invoking(slot, lifecycle)
    slot.respond(invocation.request_id, b"plain words", "text/plain; charset=utf-8")
    assert invocation.result.result().content_type == "text/plain; charset=utf-8"
    second = _invoking(slot, lifecycle)
    slot.respond(second.request_id, b"{}", None)  # the runtime said nothing: JSON, as Lambda answers
    assert second.result.result().content_type == "application/json"


@pytest.mark.asyncio
async def test_a_response_too_large_says_its_size_when_the_runtime_sent_one():
    lifecycle = Lifecycle("e1")
    slot = InvocationSlot(lifecycle, asyncio.get_running_loop(), retry_of=None)
    invocation = _invoking(slot, lifecycle)
    slot.respond_too_large(invocation.request_id, 7_000_000)
    outcome = invocation.result.result()
    assert outcome.error_type == "Function.ResponseSizeTooLarge" and lifecycle.history[-1].event == "error"
    assert outcome.message.startswith("Response payload size (7000000 bytes) exceeded maximum allowed payload size")
    unsized = _invoking(slot, lifecycle)
    slot.respond_too_large(unsized.request_id, None)  # a chunked body: its size is not known
    assert unsized.result.result().message.startswith("Response payload size exceeded maximum allowed payload size")


@pytest.mark.asyncio
async def test_a_streamed_response_answers_a_buffered_caller_whole_when_it_ends():
    lifecycle = Lifecycle("e1")
    slot = InvocationSlot(lifecycle, asyncio.get_running_loop(), retry_of=None)
    invocation = _invoking(slot, lifecycle)
    stream = slot.respond_stream(invocation.request_id, "text/html")
    with pytest.raises(InvalidStateTransition, match="is being answered by a streamed response"):
        slot.respond(invocation.request_id, b"{}", None)
    await stream.write(b"<p>one</p>")
    await stream.write(b"<p>two</p>")
    assert not invocation.result.done() and lifecycle.state is State.INVOKING  # answered once the stream ends
    stream.close(None, None)
    assert lifecycle.state is State.RESPONDED and lifecycle.history[-1].event == "response"
    outcome = invocation.result.result()
    assert (outcome.payload, outcome.error_type, outcome.content_type) == (b"<p>one</p><p>two</p>", None, "text/html")


@pytest.mark.asyncio
async def test_a_streamed_response_that_ends_with_an_error_answers_with_it():
    lifecycle = Lifecycle("e1")
    slot = InvocationSlot(lifecycle, asyncio.get_running_loop(), retry_of=None)
    invocation = _invoking(slot, lifecycle)
    stream = slot.respond_stream(invocation.request_id, "text/plain")
    await stream.write(b"half")
    stream.close("Runtime.Crashed", b'{"errorType": "Runtime.Crashed", "errorMessage": "gone"}')
    assert lifecycle.state is State.RESPONDED and lifecycle.history[-1].event == "error"
    assert invocation.result.result().error_type == "Runtime.Crashed"


@pytest.mark.asyncio
async def test_a_streaming_caller_gets_the_stream_at_once_and_its_end_is_not_answered_again():
    lifecycle = Lifecycle("e1")
    slot = InvocationSlot(lifecycle, asyncio.get_running_loop(), retry_of=None)
    invocation = _invoking(slot, lifecycle)
    invocation.streaming_invoke = True
    stream = slot.respond_stream(invocation.request_id, "text/plain")
    answered = invocation.result.result()
    assert answered.stream is stream and answered.payload == b"" and answered.content_type == "text/plain"
    await stream.write(b"chunk")
    stream.close(None, None)
    assert lifecycle.state is State.RESPONDED and lifecycle.history[-1].event == "response"
    assert invocation.result.result() is answered


@pytest.mark.asyncio
async def test_a_stream_that_ends_after_the_environment_ended_its_invocation_changes_nothing():
    lifecycle = Lifecycle("e1")
    slot = InvocationSlot(lifecycle, asyncio.get_running_loop(), retry_of=None)
    invocation = _invoking(slot, lifecycle)
    stream = slot.respond_stream(invocation.request_id, "text/plain")
    lifecycle.on_deadline()  # the invocation timed out first
    invocation.resolve(Outcome.error("Sandbox.Timedout", "Task timed out"))
    assert stream.ended.result() is not None  # the invocation's end ended its stream, with its error
    assert lifecycle.state is State.STOPPING and lifecycle.history[-1].event == "deadline"
    assert invocation.result.result().error_type == "Sandbox.Timedout"
    # ...and a stream of an invocation no longer current is not taken for the current one's answer
    lifecycle_2 = Lifecycle("e2")
    slot_2 = InvocationSlot(lifecycle_2, asyncio.get_running_loop(), retry_of=None)
    old = _invoking(slot_2, lifecycle_2)
    old_stream = slot_2.respond_stream(old.request_id, "text/plain")
    slot_2.current = Invocation(b"{}", "arn:aws:lambda:us-east-1:000000000000:function:fn")
    old_stream.close(None, None)
    assert lifecycle_2.state is State.INVOKING and not old.result.done()


@pytest.mark.asyncio
async def test_the_runtime_waits_in_next_while_its_call_is_pending():
    slot = InvocationSlot(Lifecycle("e1"), asyncio.get_running_loop(), retry_of=None)
    assert not slot.waiting
    slot.waiter = asyncio.get_running_loop().create_future()
    assert slot.waiting
    slot.waiter.cancel()  # the runtime's connection went away
    assert not slot.waiting


@pytest.mark.asyncio
async def test_the_running_invocation_is_the_current_one_and_a_log_line_goes_to_the_pending_one_before():
    slot = InvocationSlot(Lifecycle("e1"), asyncio.get_running_loop(), retry_of=None)
    assert slot.running is None and slot.log_target() is None
    pending = Invocation(b"{}", "arn:aws:lambda:us-east-1:000000000000:function:fn")
    slot.pending = pending
    assert slot.running is None and slot.log_target() is pending
    slot.current, slot.pending = pending, None
    assert slot.running is pending and slot.log_target() is pending


def _answered(ago_s: float) -> Lifecycle:
    """An environment whose runtime answered ``ago_s`` ago (its clock set back by that much)."""
    lifecycle = Lifecycle("e1", clock=lambda: time.monotonic() - ago_s)
    lifecycle.on_next()
    lifecycle.on_invoke()
    lifecycle.on_response()
    return lifecycle


@pytest.mark.asyncio
async def test_an_environment_is_expected_back_in_next_only_within_the_wait_after_its_answer():
    loop = asyncio.get_running_loop()
    assert InvocationSlot(_answered(0.0), loop, retry_of=None).answered_within_wait()
    assert not InvocationSlot(_answered(ANSWERED_WAIT_S + 0.5), loop, retry_of=None).answered_within_wait()
    ready = Lifecycle("e1")
    ready.on_next()
    assert not InvocationSlot(ready, loop, retry_of=None).answered_within_wait()


@pytest.mark.asyncio
async def test_an_invocation_is_given_back_when_the_wait_from_the_answer_has_passed():
    lifecycle = _answered(ANSWERED_WAIT_S - 0.2)
    slot = InvocationSlot(lifecycle, asyncio.get_running_loop(), retry_of=None)
    invocation = Invocation(b"{}", "arn:aws:lambda:us-east-1:000000000000:function:fn")
    slot.pending = invocation
    given_back: asyncio.Future[float] = asyncio.get_running_loop().create_future()
    slot.arm_give_back(invocation, lambda given: given_back.set_result(time.monotonic() - lifecycle.entered_s))
    waited_s = await asyncio.wait_for(given_back, 5)
    # the wait counts from the answer (0.2 s left of it), not from the assignment
    assert ANSWERED_WAIT_S <= waited_s < ANSWERED_WAIT_S + 0.5, f"given back {waited_s:.3f} s after the answer"


@pytest.mark.asyncio
async def test_the_wait_for_the_give_back_is_one_timer_not_a_busy_loop():
    lifecycle = _answered(0.0)
    slot = InvocationSlot(lifecycle, asyncio.get_running_loop(), retry_of=None)
    slot.pending = invocation = Invocation(b"{}", "arn:aws:lambda:us-east-1:000000000000:function:fn")
    given_back: asyncio.Future[float] = asyncio.get_running_loop().create_future()
    cpu_before_s = time.process_time()
    slot.arm_give_back(invocation, lambda given: given_back.set_result(time.process_time() - cpu_before_s))
    cpu_s = await asyncio.wait_for(given_back, 5)
    assert time.monotonic() - lifecycle.entered_s >= ANSWERED_WAIT_S
    # a timer armed for a delay already past fires at once and re-arms until the wait has passed: a second of CPU
    assert cpu_s < 0.15, f"{cpu_s:.3f} s of CPU over the {ANSWERED_WAIT_S} s wait"


@pytest.mark.asyncio
async def test_an_invocation_handed_over_or_cancelled_is_not_given_back():
    loop = asyncio.get_running_loop()
    given_back: list[Invocation] = []
    handed_over, moved_on, cancelled = (_answered(ANSWERED_WAIT_S + 0.5) for _ in range(3))
    slots = [InvocationSlot(lifecycle, loop, retry_of=None) for lifecycle in (handed_over, moved_on, cancelled)]
    for slot in slots:
        slot.pending = Invocation(b"{}", "arn:aws:lambda:us-east-1:000000000000:function:fn")
        slot.arm_give_back(slot.pending, given_back.append)  # due at once: the answer was 1.5 s ago
    slots[0].pending = None  # handed over: the runtime came back to `next` in time
    moved_on.on_next()  # back in `next`, the invocation not handed over yet
    slots[2].cancel_give_back()
    await asyncio.sleep(0.2)  # wait-ok: what is under test is that nothing comes by this time, well past due
    assert given_back == []


@pytest.mark.parametrize("loop_factory", [asyncio.new_event_loop, uvloop.new_event_loop], ids=["asyncio", "uvloop"])
def test_an_invocation_is_never_given_back_before_the_wait_has_passed(loop_factory):
    # as a deadline (below): the loop's timers may fire up to a millisecond early
    async def main() -> list[float]:
        early: list[float] = []
        for n in range(40):
            lifecycle = _answered(ANSWERED_WAIT_S - 0.0013 - n * 0.00017)
            slot = InvocationSlot(lifecycle, asyncio.get_running_loop(), retry_of=None)
            slot.pending = invocation = Invocation(b"{}", "arn:aws:lambda:us-east-1:000000000000:function:fn")
            given_back = asyncio.Event()

            def give_back(given: Invocation, answered: Lifecycle = lifecycle, done: asyncio.Event = given_back) -> None:
                early.append(ANSWERED_WAIT_S - (time.monotonic() - answered.entered_s))
                done.set()

            slot.arm_give_back(invocation, give_back)
            await asyncio.wait_for(given_back.wait(), 5)
        return early

    early = _run_on(loop_factory, main)
    assert len(early) == 40 and max(early) <= 0, f"given back {max(early) * 1e6:.0f} µs before the wait had passed"


@pytest.mark.asyncio
async def test_the_late_answer_of_a_suspended_invocation_is_taken_once():
    slot = InvocationSlot(Lifecycle("e1"), asyncio.get_running_loop(), retry_of=None)
    assert not slot.suspended
    timed_out = new_request_id()
    slot.suspend(timed_out)
    assert slot.suspended
    assert not slot.take_late(new_request_id())
    # the runtime's answer names the id in its own text (read from the request's path), equal but not the same object
    answered = str(uuid.UUID(timed_out))
    assert answered == timed_out and answered is not timed_out
    assert slot.take_late(answered)
    assert not slot.take_late(answered)  # a second answer with that id is the runtime's error, not a late one
    slot.resume()
    assert not slot.suspended


@pytest.mark.asyncio
async def test_an_invocation_whose_init_is_retried_is_pending_and_running_from_the_start():
    retried = Invocation(b"{}", "arn:aws:lambda:us-east-1:000000000000:function:fn")
    slot = InvocationSlot(Lifecycle("e1"), asyncio.get_running_loop(), retry_of=retried)
    assert slot.pending is retried and slot.running is retried and slot.log_target() is retried


@pytest.mark.asyncio
async def test_a_deadline_runs_its_callback_unless_cancelled_or_rearmed():
    deadline = Deadline(asyncio.get_running_loop())
    fired: list[str] = []
    expired = asyncio.Event()

    def on_expiry(name: str):
        def expire() -> None:
            fired.append(name)
            expired.set()

        return expire

    deadline.arm(time.monotonic(), on_expiry("cancelled"))
    deadline.cancel()
    deadline.arm(time.monotonic(), on_expiry("re-armed"))
    deadline.arm(time.monotonic(), on_expiry("last"))
    await asyncio.wait_for(expired.wait(), 5)
    assert fired == ["last"]


@pytest.mark.asyncio
async def test_a_deadline_already_passed_expires_at_once():
    deadline = Deadline(asyncio.get_running_loop())
    expired = asyncio.Event()
    armed = time.monotonic()
    deadline.arm(armed - 3.0, expired.set)
    await asyncio.wait_for(expired.wait(), 5)
    assert time.monotonic() - armed < 0.5


@pytest.mark.parametrize("loop_factory", [asyncio.new_event_loop, uvloop.new_event_loop], ids=["asyncio", "uvloop"])
def test_a_deadline_never_ends_anything_before_it_has_passed(loop_factory):
    # uvloop's timers count whole milliseconds from the time cached at the start of a loop iteration: a timeout's
    # REPORT showed Duration 999.92 ms for a 1 s timeout before the deadline checked the clock on expiry
    async def main() -> list[float]:
        deadline = Deadline(asyncio.get_running_loop())
        early: list[float] = []
        for n in range(40):
            expired = asyncio.Event()
            due = time.monotonic() + 0.0013 + n * 0.00017

            def expire(due: float = due, expired: asyncio.Event = expired) -> None:
                early.append(due - time.monotonic())
                expired.set()

            deadline.arm(due, expire)
            await asyncio.wait_for(expired.wait(), 5)
        return early

    early = _run_on(loop_factory, main)
    assert len(early) == 40 and max(early) <= 0, f"fired {max(early) * 1e6:.0f} µs before the deadline"


def _run_on(loop_factory, main):
    """``main()`` on a loop of its own made by ``loop_factory`` (asyncio's or uvloop's), closed after."""
    loop = loop_factory()
    try:
        return loop.run_until_complete(main())
    finally:
        loop.close()


def test_request_ids_are_version_4_uuids_and_trace_ids_have_x_ray_shape():
    ids = [new_request_id() for _ in range(10_000)]
    assert len(set(ids)) == len(ids)
    for text in ids[:500]:
        parsed = uuid.UUID(text)
        assert str(parsed) == text and parsed.version == 4 and parsed.variant == uuid.RFC_4122
    assert re.fullmatch(r"Root=1-[0-9a-f]{8}-[0-9a-f]{24};Parent=[0-9a-f]{16};Sampled=0", new_trace_id())
    # a test that seeds the global generator (pytest-randomly does, before each test) cannot make them repeat
    state = random.getstate()
    try:
        random.seed(13)
        first = new_request_id(), new_trace_id()
        random.seed(13)
        assert (new_request_id(), new_trace_id()) != first
    finally:
        random.setstate(state)


def test_freeze_control_tells_its_listeners_and_counts_the_time_frozen():
    control = FreezeControl(NoFreezeBackend(), "e1")
    told: list[bool] = []
    control.add_listener(told.append)
    control.open()
    assert control.backend == "none" and not control.freezes
    before_freeze = time.monotonic()
    control.freeze()
    after_freeze = time.monotonic()
    assert control.frozen and told == [True]
    # the current freeze counts, from when it began
    assert 2.0 <= control.frozen_s(after_freeze + 2.0) <= 2.0 + (after_freeze - before_freeze)
    control.thaw()
    after_thaw = time.monotonic()
    assert not control.frozen and told == [True, False]
    # once thawed, the freeze counts for as long as it lasted, and no more
    first_s = control.frozen_s(after_thaw + 5.0)
    assert 0.0 <= first_s <= after_thaw - before_freeze
    control.remove_listener(told.append)
    before_freeze = time.monotonic()
    control.freeze()
    after_freeze = time.monotonic()
    assert told == [True, False]
    # a second freeze adds its share to the first's
    assert first_s + 3.0 <= control.frozen_s(after_freeze + 3.0) <= first_s + 3.0 + (after_freeze - before_freeze)


@pytest.mark.asyncio
async def test_the_wait_for_the_kernel_s_freeze_rereads_with_a_pause_that_grows_to_20_ms():
    control = FreezeControl(NoFreezeBackend(), "e1")  # its kernel never says frozen
    assert await control.wait_kernel_frozen(lambda: True, 1.0) is False  # no group yet: nothing will freeze
    control.open()
    reads: list[float] = []

    def still_wanted() -> bool:
        reads.append(time.monotonic())
        return True

    started = time.monotonic()
    assert await control.wait_kernel_frozen(still_wanted, 1.0) is False  # timed out
    assert 1.0 <= time.monotonic() - started < 1.5
    pauses = [b - a for a, b in itertools.pairwise(reads)]
    # from 100 µs, doubling, to at most 20 ms: about 56 reads in the second, neither a busy loop nor long naps
    assert 20 <= len(reads) <= 200, f"{len(reads)} reads in 1 s"
    assert pauses[0] < 0.1 and max(pauses) < 0.25, f"pauses from {pauses[0]:.4f} s to {max(pauses):.4f} s"


@pytest.mark.asyncio
async def test_the_wait_for_the_kernel_s_freeze_ends_as_soon_as_it_is_no_longer_wanted():
    control = FreezeControl(NoFreezeBackend(), "e1")
    control.open()
    reads: list[float] = []

    def still_wanted() -> bool:
        reads.append(time.monotonic())
        return len(reads) < 3  # the environment was thawed meanwhile

    started = time.monotonic()
    assert await control.wait_kernel_frozen(still_wanted, 5.0) is False
    assert len(reads) == 3 and time.monotonic() - started < 1.0


class _Pool:
    def __init__(self) -> None:
        self.told: list[tuple[str, object]] = []

    def on_idle(self, env: str) -> None:
        self.told.append(("idle", env))

    def on_init_failed(self, env: str, failure: InitFailure, pending: Invocation | None) -> None:
        self.told.append(("init failed", env))

    def on_orphaned(self, env: str, invocation: Invocation) -> None:
        self.told.append(("orphaned", env))

    def place_elsewhere(self, env: str, invocation: Invocation) -> bool:
        return False

    def on_stopped(self, env: str) -> None:
        self.told.append(("stopped", env))

    def on_suspended(self, env: str) -> None:
        self.told.append(("suspended", env))

    async def open_upstreams(self, env: str) -> dict[str, str]:
        return {}

    async def close_upstreams(self, env: str) -> None:
        self.told.append(("upstreams closed", env))


def test_an_init_failure_cannot_be_changed_once_made():
    failure = InitFailure(Outcome.error("Runtime.ExitError", "exited"), "error")
    with pytest.raises(dataclasses.FrozenInstanceError):
        failure.status = "timeout"  # type: ignore[misc]


@pytest.mark.asyncio
async def test_the_bound_owner_names_its_environment_until_the_pool_is_told_it_stopped():
    pool = _Pool()
    owner = BoundOwner(pool, "env-1")
    owner.on_idle()
    owner.on_suspended()
    await owner.close_upstreams()
    owner.on_stopped()
    assert pool.told == [("idle", "env-1"), ("suspended", "env-1"), ("upstreams closed", "env-1"), ("stopped", "env-1")]
    with pytest.raises(RuntimeError, match="the environment has stopped"):
        owner.on_idle()  # it let go of the environment: nothing keeps a stopped one alive

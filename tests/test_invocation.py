"""One invocation's parts alone: its outcome, how the caller of InvokeWithResponseStream is answered, and the
invocation's own answer, start and end. Unit tests: no process and no socket."""

from __future__ import annotations

import asyncio
import base64
import dataclasses
import json
import time

import pytest

from emulator.engine.invocation import CallerStream, Invocation, Outcome, decode_client_context
from emulator.engine.lifecycle import Lifecycle
from emulator.engine.slot import InvocationSlot
from runtime_api import MAX_RESPONSE_BYTES, StreamEnd

ARN = "arn:aws:lambda:us-east-1:000000000000:function:fn"


def test_an_error_outcome_names_the_request_only_when_given_one() -> None:
    named = Outcome.error("Sandbox.Timedout", "Task timed out after 1.00 seconds", request_id="r-1")
    assert json.loads(named.payload) == {
        "errorType": "Sandbox.Timedout",
        "errorMessage": "RequestId: r-1 Error: Task timed out after 1.00 seconds",
    }
    assert (named.error_type, named.ok) == ("Sandbox.Timedout", False)
    plain = Outcome.error("Runtime.ExitError", "exited")
    assert json.loads(plain.payload) == {"errorType": "Runtime.ExitError", "errorMessage": "exited"}


def test_an_outcome_cannot_be_changed_once_made() -> None:
    # One outcome is shared by the caller, the timeline and a retried INIT's invocations: none may alter it.
    outcome = Outcome(b'{"ok": 1}')
    with pytest.raises(dataclasses.FrozenInstanceError):
        outcome.payload = b"changed"  # type: ignore[misc]
    assert outcome.payload == b'{"ok": 1}'


def test_an_outcome_s_message_is_its_error_message_or_nothing() -> None:
    assert Outcome(b'{"errorType": "E", "errorMessage": "went wrong"}', "E").message == "went wrong"
    assert Outcome(b'{"errorType": "E"}', "E").message == ""
    assert Outcome(b"not json at all", "E").message == ""  # a payload that does not parse
    assert Outcome(b'["a", "list"]', "E").message == ""  # one that parses to something without fields


@pytest.mark.parametrize(
    ("body", "header", "error_type", "payload"),
    [
        # the type in the body wins over the header's: the real runtime clients put it there
        (b'{"errorType": "Body.Type", "errorMessage": "m"}', "Header.Type", "Body.Type", None),
        (b'{"errorType": "Body.Type", "errorMessage": "m"}', None, "Body.Type", None),
        (b'{"errorMessage": "m"}', "Header.Type", "Header.Type", None),
        (b'{"errorMessage": "m"}', None, "Unhandled", None),
        # a body that is not a JSON object becomes the message of one
        (b"plain failure", "Header.Type", "Header.Type", {"errorType": "Header.Type", "errorMessage": "plain failure"}),
        (b"plain failure", None, "Unhandled", {"errorType": "Unhandled", "errorMessage": "plain failure"}),
        (b'["a list"]', None, "Unhandled", {"errorType": "Unhandled", "errorMessage": '["a list"]'}),
    ],
)
def test_a_runtime_error_s_type_comes_from_its_body_then_its_header(
    body: bytes, header: str | None, error_type: str, payload: dict[str, str] | None
) -> None:
    outcome = Outcome.from_runtime_error(body, header)
    assert outcome.error_type == error_type
    if payload is None:
        assert outcome.payload == body  # an object is passed to the caller as the runtime sent it
    else:
        assert json.loads(outcome.payload) == payload


def test_a_client_context_reaches_the_runtime_as_its_json_text() -> None:
    assert decode_client_context(None) is None
    encoded = base64.b64encode(b'{"custom": {"k": "v"}}').decode()
    assert decode_client_context(encoded) == '{"custom": {"k": "v"}}'


@pytest.mark.asyncio
async def test_an_invocation_started_has_its_deadline_on_both_clocks() -> None:
    invocation = Invocation(b"{}", ARN)
    assert (invocation.started_s, invocation.deadline_s, invocation.cold_start) == (None, None, False)
    before_s, before_epoch_s = time.monotonic(), time.time()
    invocation.start(3.0)
    after_s, after_epoch_s = time.monotonic(), time.time()
    assert invocation.started_s is not None and before_s <= invocation.started_s <= after_s
    assert invocation.deadline_s == invocation.started_s + 3.0
    # Lambda-Runtime-Deadline-Ms: epoch milliseconds, the timeout from now
    assert int((before_epoch_s + 3.0) * 1000) <= invocation.deadline_ms <= int((after_epoch_s + 3.0) * 1000)


@pytest.mark.asyncio
async def test_an_invocation_is_answered_once() -> None:
    invocation = Invocation(b"{}", ARN)
    first = Outcome(b'{"ok": 1}')
    assert invocation.resolve(first) is True
    assert invocation.resolve(Outcome.error("Sandbox.Timedout", "late")) is False
    assert invocation.result.result() is first
    assert not invocation.finished.done()  # END and REPORT are the environment's to write


@pytest.mark.asyncio
async def test_an_abandoned_invocation_is_answered_and_finished() -> None:
    # At shutdown, an invocation that never ran: its caller is answered and whatever awaits its END is released.
    invocation = Invocation(b"{}", ARN)
    shutdown = Outcome.error("Runtime.Unavailable", "the emulator is shutting down")
    invocation.abandon(shutdown)
    assert invocation.result.result() is shutdown
    assert invocation.finished.done()
    invocation.abandon(Outcome.error("Runtime.Unavailable", "again"))  # twice: no error, the first answer stays
    assert invocation.result.result() is shutdown


@pytest.mark.asyncio
async def test_a_buffered_answer_to_a_streaming_caller_is_one_chunk_or_none() -> None:
    invocation = Invocation(b"{}", ARN, streaming_invoke=True)
    ended: list[Outcome] = []
    ok = Outcome(b'{"whole": 1}')
    caller = CallerStream(invocation, ok, log_tail=False, on_end=ended.append)
    assert ended == [ok]  # told at once: nothing is left to stream
    assert [chunk async for chunk in caller] == [b'{"whole": 1}']
    assert await caller.end() == StreamEnd(log_tail=None)
    caller.abandon()  # a caller that goes away from a buffered answer: nothing to release

    empty = CallerStream(invocation, Outcome(b""), log_tail=False, on_end=ended.append)
    assert [chunk async for chunk in empty] == []  # an empty payload is no chunk at all

    failed = Outcome.from_runtime_error(b'{"errorType": "ValueError", "errorMessage": "no"}', None)
    caller = CallerStream(invocation, failed, log_tail=False, on_end=ended.append)
    assert [chunk async for chunk in caller] == []  # the error is in InvokeComplete, not a chunk
    assert await caller.end() == StreamEnd("ValueError", '{"errorType": "ValueError", "errorMessage": "no"}', None)
    assert ended == [ok, Outcome(b""), failed]


@pytest.mark.asyncio
async def test_an_invocation_is_buffered_unless_its_caller_reads_a_stream() -> None:
    # Async invocations, SQS batches and BUFFERED function URLs make theirs without saying: a runtime that streams
    # its answer to one of them is read whole, within Invoke's limit, and the caller answered at the end.
    lifecycle = Lifecycle("e1")
    slot = InvocationSlot(lifecycle, asyncio.get_running_loop(), retry_of=None)
    invocation = Invocation(b"{}", ARN)
    lifecycle.on_next()
    lifecycle.on_invoke()
    slot.current = invocation
    stream = slot.respond_stream(invocation.request_id, "text/plain")
    assert (stream.forward, stream.limit_bytes) == (False, MAX_RESPONSE_BYTES)
    assert not invocation.result.done()
    await stream.write(b"whole")
    stream.close(None, None)
    assert invocation.result.result() == Outcome(b"whole", None, "text/plain")

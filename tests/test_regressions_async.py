"""Asynchronous invocation, what the other tests leave open: the on-failure record's exact shape (and its file), the
report of the events left at shutdown, an aged-out event that does not hold up the ones queued behind it, and a
shutdown that lets the attempts under way finish.

The first tests drive the record and the shutdown report directly (no emulator, no process); the last ones run a
real function under the emulator, called through boto3."""

from __future__ import annotations

import asyncio
import json
import logging
import os
import re
import select
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from conftest import FUNCTIONS, lambda_client
from emulator import FunctionConfig, ServerConfig
from emulator.engine.invocation import Outcome
from emulator.sources.async_invoke import FAILURES_FILE, AsyncEvent, FailureRecord, load_pending, save_pending
from emulator.testing import CollectingSink, EmulatorThread

pytestmark = pytest.mark.timeout(60)

ROOT = Path(__file__).resolve().parents[1]
ARN = "arn:aws:lambda:us-east-1:000000000000:function:fn"


def test_a_failure_record_has_the_destinations_shape_and_goes_to_the_state_directory(tmp_path):
    failures = FailureRecord(tmp_path)
    event = AsyncEvent("fn", b'{"key": "b"}', request_id="r-1", attempts=3)
    event.last = Outcome.error("Unhandled", "attempt 3 fails")
    record = failures.add(event, "RetriesExhausted", ARN)
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", record.pop("timestamp"))
    assert record == {
        "version": "1.0",
        "requestContext": {
            "requestId": "r-1",
            "functionArn": f"{ARN}:$LATEST",
            "condition": "RetriesExhausted",
            "approximateInvokeCount": 3,
        },
        "requestPayload": {"key": "b"},
        "responseContext": {"statusCode": 200, "executedVersion": "$LATEST", "functionError": "Unhandled"},
        "responsePayload": {"errorType": "Unhandled", "errorMessage": "attempt 3 fails"},
    }
    (line,) = (tmp_path / FAILURES_FILE).read_text().splitlines()
    written = json.loads(line)
    del written["timestamp"]
    assert written == record
    failures.add(AsyncEvent("fn", b"{}", request_id="r-2"), "EventAgeExceeded", ARN)
    assert [json.loads(x)["requestContext"]["requestId"] for x in (tmp_path / FAILURES_FILE).read_text().splitlines()] \
        == ["r-1", "r-2"]  # appended, one record a line


def test_an_event_that_never_ran_is_recorded_without_a_response():
    failures = FailureRecord(None)
    record = failures.add(AsyncEvent("fn", b"[1, 2]"), "EventAgeExceeded", ARN)
    assert record["requestPayload"] == [1, 2]
    assert "responseContext" not in record and "responsePayload" not in record
    assert failures.records == [record]


def test_payloads_that_are_not_json_are_recorded_as_text():
    # An event kept in the state directory may carry any bytes; an error body is recorded as it came.
    event = AsyncEvent("fn", b"not json \xff")
    event.last = Outcome(b"Killed", "Runtime.ExitError")
    record = FailureRecord(None).add(event, "RetriesExhausted", ARN)
    assert record["requestPayload"] == "not json \ufffd"
    assert record["responsePayload"] == "Killed"


@pytest.mark.parametrize("count", [9, 10, 11])
def test_the_events_left_at_shutdown_are_named_up_to_ten(tmp_path, caplog, count):
    events = [AsyncEvent("fn", b"{}", request_id=f"id-{n}") for n in range(count)]
    with caplog.at_level(logging.WARNING, logger="lambda_freeze.async"):
        save_pending(tmp_path, events)
    (message,) = [r.getMessage() for r in caplog.records]
    named = ", ".join(f"id-{n}" for n in range(min(count, 10)))
    more = " ..." if count > 10 else ""
    assert message.startswith(f"{count} asynchronous event(s) not delivered at shutdown, kept in ")
    assert message.endswith(f": {named}{more}")
    assert [e.request_id for e in load_pending(tmp_path)] == [f"id-{n}" for n in range(count)]


def test_the_events_left_at_shutdown_without_a_state_directory_are_printed(capsys, caplog):
    events = [AsyncEvent("fn", b'{"a": 1}', request_id="id-0"), AsyncEvent("fn", b"{}", request_id="id-1")]
    with caplog.at_level(logging.WARNING, logger="lambda_freeze.async"):
        save_pending(None, events)
    printed = [json.loads(line)["undelivered"] for line in capsys.readouterr().out.splitlines()]
    assert printed == [e.to_json() for e in events]
    (message,) = [r.getMessage() for r in caplog.records]
    assert message.endswith("(no --state-dir to keep them): id-0, id-1")
    assert load_pending(None) == []


def test_the_events_printed_at_shutdown_are_out_at_once():
    # A supervisor reads the emulator's stdout through a pipe (docker logs, a CI step): the undelivered events are out
    # when they are reported (a function removed from a running emulator), not when the process ends.
    script = (
        "import sys\n"
        "from emulator.sources.async_invoke import AsyncEvent, save_pending\n"
        "save_pending(None, [AsyncEvent('fn', b'{}', request_id='id-0')])\n"
        "sys.stdin.read()\n"
    )
    env = {k: v for k, v in os.environ.items() if k != "PYTHONUNBUFFERED"}  # stdout block-buffered, as on a pipe
    process = subprocess.Popen(
        [sys.executable, "-c", script],
        cwd=ROOT,
        env=env,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    try:
        ready, _, _ = select.select([process.stdout], [], [], 30)  # an import on a loaded machine: seconds at most
        assert ready, "nothing printed while the process runs"
        line = process.stdout.readline()
        assert json.loads(line)["undelivered"]["requestId"] == "id-0"
    finally:
        process.communicate(b"", timeout=30)


def status(fn) -> dict:
    return fn.emulator.emulator.async_status()["functions"][fn.name]


def send(fn, event: dict) -> str:
    response = fn.client.invoke(FunctionName=fn.name, InvocationType="Event", Payload=json.dumps(event).encode())
    assert response["StatusCode"] == 202
    return response["ResponseMetadata"]["RequestId"]


def test_an_aged_out_event_does_not_hold_up_the_one_behind_it(serve, tmp_path):
    # One environment, kept busy 3 s. A is queued at once, B 1.5 s later; when the environment comes free, A is older
    # than the 2 s maximum age (by ~1 s) and B younger (by ~0.5 s): A is recorded, and B goes through right after it.
    fn = serve("python/flaky", env={"COUNTER_DIR": str(tmp_path)}, reserved_concurrency=1, max_event_age_s=2.0)
    busy = threading.Thread(target=fn.invoke, args=({"key": "busy", "hold_s": 3},), kwargs={"tail": False})
    busy.start()
    fn.wait_envs(lambda envs: [e["state"] for e in envs] == ["invoking"])
    a = send(fn, {"key": "a"})
    time.sleep(1.5)  # wait-ok: B must be younger than A by more than the loaded CI's margins on both sides
    send(fn, {"key": "b"})
    busy.join()
    fn.wait_for(lambda emu: status(fn)["delivered"] == 1)
    (record,) = fn.emulator.emulator.async_status()["failures"]
    assert record["requestContext"]["requestId"] == a
    assert record["requestContext"]["condition"] == "EventAgeExceeded"
    assert (tmp_path / "b").read_text() == "1"
    assert not (tmp_path / "a").exists()


def test_a_shutdown_lets_the_attempt_under_way_finish(tmp_path):
    counters = tmp_path / "counters"
    counters.mkdir()
    state = tmp_path / "state"
    config = FunctionConfig(
        name="fn", code_dir=FUNCTIONS / "python/flaky", handler="app.handler", env={"COUNTER_DIR": str(counters)}
    )
    with EmulatorThread(ServerConfig(port=0, state_dir=state, functions=(config,)), sink=CollectingSink()) as emu:
        lambda_client(emu.url).invoke(
            FunctionName="fn", InvocationType="Event", Payload=b'{"key": "k", "hold_s": 1.0}'
        )
        emu.wait_for(lambda e: e.async_status()["functions"]["fn"]["in_flight"] == 1)
    # Stopped while the handler held the event: the attempt was answered, not cut short and not kept for later.
    assert emu.emulator.async_status()["functions"]["fn"]["delivered"] == 1
    assert (counters / "k").read_text() == "1"
    assert not (state / "async-pending.jsonl").exists()


def test_a_removed_function_leaves_no_queue_task_behind(serve, tmp_path):
    # The pytest plugin removes functions from a running emulator: the function's queue stops its delivery task.
    fn = serve("python/flaky", env={"COUNTER_DIR": str(tmp_path)})
    send(fn, {"key": "k"})
    fn.wait_for(lambda emu: status(fn)["delivered"] == 1)

    async def remove(emulator) -> list[str]:
        before = [t.get_name() for t in asyncio.all_tasks()]
        await emulator.remove_function(fn.name)
        return [name for name in before if name not in {t.get_name() for t in asyncio.all_tasks()}]

    assert "async fn" in fn.emulator.call(remove)  # it ran until then, and is gone

"""Asynchronous invocation: 202, retries with backoff, event age, the on-failure record; nothing lost."""

from __future__ import annotations

import json
import threading

import pytest

from conftest import FUNCTIONS, lambda_client
from emulator import FunctionConfig, ServerConfig
from emulator.testing import CollectingSink, EmulatorThread

pytestmark = pytest.mark.timeout(60)


def status(fn) -> dict:
    return fn.emulator.emulator.async_status()["functions"][fn.name]


def send(fn, event: dict) -> str:
    response = fn.client.invoke(FunctionName=fn.name, InvocationType="Event", Payload=json.dumps(event).encode())
    assert response["StatusCode"] == 202
    assert response["Payload"].read() == b""
    return response["ResponseMetadata"]["RequestId"]


def flaky(serve, tmp_path, **settings):
    return serve("python/flaky", env={"COUNTER_DIR": str(tmp_path)}, retry_delays_s=(0.05, 0.1), **settings)


def test_event_is_accepted_then_delivered(serve, tmp_path):
    fn = flaky(serve, tmp_path)
    request_id = send(fn, {"key": "a"})
    fn.wait_for(lambda emu: status(fn)["delivered"] == 1)
    assert (tmp_path / "a").read_text() == "1"
    assert f"START RequestId: {request_id} Version: $LATEST" in fn.lines


def test_retried_twice_then_recorded_as_failed(serve, tmp_path):
    fn = flaky(serve, tmp_path)
    request_id = send(fn, {"key": "b", "fail_times": 99})
    fn.wait_for(lambda emu: status(fn)["failed"] == 1)
    assert (tmp_path / "b").read_text() == "3"  # the first attempt and two retries
    starts = [line for line in fn.lines if line.startswith(f"START RequestId: {request_id}")]
    assert len(starts) == 3  # every attempt carries the event's request id
    (record,) = fn.emulator.emulator.async_status()["failures"]
    assert record["requestContext"]["requestId"] == request_id
    assert record["requestContext"]["condition"] == "RetriesExhausted"
    assert record["requestContext"]["approximateInvokeCount"] == 3
    assert record["requestContext"]["functionArn"].endswith(":function:fn:$LATEST")
    assert record["requestPayload"] == {"key": "b", "fail_times": 99}
    assert record["responseContext"]["functionError"] == "Unhandled"
    assert record["responsePayload"]["errorMessage"] == "attempt 3 fails"


def test_a_retry_that_succeeds(serve, tmp_path):
    fn = flaky(serve, tmp_path)
    send(fn, {"key": "c", "fail_times": 1})
    fn.wait_for(lambda emu: status(fn)["delivered"] == 1)
    assert (tmp_path / "c").read_text() == "2"
    assert status(fn)["failed"] == 0


def test_no_retries_when_maximum_retry_attempts_is_0(serve, tmp_path):
    fn = flaky(serve, tmp_path, max_retry_attempts=0)
    send(fn, {"key": "d", "fail_times": 99})
    fn.wait_for(lambda emu: status(fn)["failed"] == 1)
    assert (tmp_path / "d").read_text() == "1"


def test_throttled_events_wait_and_are_all_delivered(serve, tmp_path):
    fn = flaky(serve, tmp_path, reserved_concurrency=1)
    for n in range(5):
        send(fn, {"key": f"e{n}", "hold_s": 0.05})
    fn.wait_for(lambda emu: status(fn)["delivered"] == 5)
    assert len(fn.environments()) == 1
    assert sorted(p.name for p in tmp_path.iterdir()) == [f"e{n}" for n in range(5)]


def test_event_too_old_is_recorded(serve, tmp_path):
    fn = flaky(serve, tmp_path, reserved_concurrency=1, max_event_age_s=0.3)
    blocker = threading.Thread(target=fn.invoke, args=({"key": "hold", "hold_s": 1.0},), kwargs={"tail": False})
    blocker.start()
    fn.wait_envs(lambda envs: len(envs) == 1 and envs[0]["state"] == "invoking")
    send(fn, {"key": "late"})
    fn.wait_for(lambda emu: status(fn)["failed"] == 1)
    blocker.join()
    (record,) = fn.emulator.emulator.async_status()["failures"]
    assert record["requestContext"]["condition"] == "EventAgeExceeded"
    assert record["requestContext"]["approximateInvokeCount"] == 0
    assert not (tmp_path / "late").exists()


def test_async_payload_limit_is_1mb(serve):
    fn = serve("python/basic")
    with pytest.raises(fn.client.exceptions.RequestTooLargeException) as raised:
        fn.client.invoke(FunctionName="fn", InvocationType="Event", Payload=json.dumps({"d": "x" * 1_100_000}))
    assert "1048576 bytes" in str(raised.value)


def test_undelivered_events_are_kept_and_delivered_after_a_restart(tmp_path):
    counters = tmp_path / "counters"
    counters.mkdir()
    state = tmp_path / "state"
    config = FunctionConfig(
        name="fn",
        code_dir=FUNCTIONS / "python/flaky",
        handler="app.handler",
        env={"COUNTER_DIR": str(counters)},
        retry_delays_s=(30.0, 30.0),  # longer than this test: the retry is still waiting at shutdown
    )
    with EmulatorThread(ServerConfig(port=0, state_dir=state, functions=(config,)), sink=CollectingSink()) as emu:
        client = lambda_client(emu.url)
        client.invoke(FunctionName="fn", InvocationType="Event", Payload=b'{"key": "k", "fail_times": 1}')
        emu.wait_for(lambda e: e.async_status()["functions"]["fn"]["retrying"] == 1)
    kept = (state / "async-pending.jsonl").read_text().splitlines()
    assert len(kept) == 1 and json.loads(kept[0])["attempts"] == 1
    with EmulatorThread(ServerConfig(port=0, state_dir=state, functions=(config,)), sink=CollectingSink()) as emu:
        emu.wait_for(lambda e: e.async_status()["functions"]["fn"]["delivered"] == 1)
    assert (counters / "k").read_text() == "2"
    assert not (state / "async-pending.jsonl").exists()

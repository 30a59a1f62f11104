"""When things happen, where the time is the feature: a timeout ends the call and its REPORT at the timeout (not
earlier, not much later), an idle environment is recycled no earlier than its idle timeout, and each asynchronous
retry waits its own delay, and an event that ages out while it waits is recorded as such.

Upper bounds leave room for a loaded 2-core CI (a few hundred ms) and stay below the slips they are meant to catch
(a timer armed 0.45 s late, every retry waiting the first delay)."""

from __future__ import annotations

import json
import re
import threading
import time

import pytest

pytestmark = pytest.mark.timeout(90)

TIMEOUT_S = 1.0
# What a loaded CI may add to a timer firing and to the answer's trip to the caller; a late timer is 0.45 s late.
LATE_S = 0.4


def test_a_timeout_ends_the_call_and_its_report_at_the_timeout(serve):
    fn = serve("python/basic", timeout_s=TIMEOUT_S)
    assert fn.invoke({}).function_error is None  # INIT done: the next call measures the handler's timeout alone
    started = time.monotonic()
    result = fn.invoke({"action": "sleep", "seconds": 10})
    waited_s = time.monotonic() - started
    assert result.payload["errorType"] == "Sandbox.Timedout"
    assert TIMEOUT_S <= waited_s < TIMEOUT_S + LATE_S
    report = next(line for line in fn.lines if line.startswith(f"REPORT RequestId: {result.request_id}"))
    assert "\tStatus: timeout" in report
    duration_ms = float(re.search(r"\tDuration: ([0-9.]+) ms", report)[1])
    assert TIMEOUT_S * 1000 <= duration_ms < (TIMEOUT_S + LATE_S) * 1000


def test_an_idle_environment_lives_its_idle_timeout(serve):
    idle_timeout_s = 1.0
    fn = serve("python/basic", idle_timeout_s=idle_timeout_s)
    fn.invoke({})
    answered = time.monotonic()  # the environment went idle a moment after this answer was sent, not before
    (env,) = fn.environments()
    fn.wait_envs(lambda envs: envs == [])
    assert time.monotonic() - answered >= idle_timeout_s - 0.05  # 50 ms: the answer's trip back to this test
    fn.invoke({})
    (new,) = fn.environments()
    assert new["id"] != env["id"]


def stamps(directory, key: str) -> list[float]:
    path = directory / key
    return [float(line) for line in path.read_text().split()] if path.exists() else []


def send(fn, event: dict) -> str:
    response = fn.client.invoke(FunctionName=fn.name, InvocationType="Event", Payload=json.dumps(event).encode())
    assert response["StatusCode"] == 202
    return response["ResponseMetadata"]["RequestId"]


def failures(fn) -> list[dict]:
    return fn.emulator.emulator.async_status()["failures"]


def test_each_retry_waits_its_own_delay(serve, tmp_path):
    delays_s = (0.3, 1.2)
    fn = serve("python/stamps", env={"STAMP_DIR": str(tmp_path)}, retry_delays_s=delays_s)
    send(fn, {"key": "e"})
    fn.wait_for(lambda emu: len(failures(fn)) == 1)
    first, second, third = stamps(tmp_path, "e")
    # Each gap is the failed attempt (tens of ms), then the delay: never shorter than the delay. The upper bound
    # leaves 0.6 s to a loaded CI and still tells the first delay from the second.
    assert delays_s[0] <= second - first < delays_s[0] + 0.6
    assert delays_s[1] <= third - second < delays_s[1] + 0.6
    assert failures(fn)[0]["requestContext"]["condition"] == "RetriesExhausted"


def test_an_event_that_ages_out_while_it_waits_for_a_retry(serve, tmp_path):
    fn = serve("python/stamps", env={"STAMP_DIR": str(tmp_path)}, retry_delays_s=(1.0, 1.0), max_event_age_s=0.5)
    send(fn, {"key": "old"})
    fn.wait_for(lambda emu: len(failures(fn)) == 1)
    (record,) = failures(fn)
    assert record["requestContext"]["condition"] == "EventAgeExceeded"
    assert record["requestContext"]["approximateInvokeCount"] == 1  # the first attempt ran; no retry did
    assert len(stamps(tmp_path, "old")) == 1


def test_an_event_aged_out_at_its_retry_is_recorded_then_even_behind_a_throttled_one(serve, tmp_path):
    # One environment at most. Event A fails, and waits 1 s for its retry, by when it is older than 0.9 s. Meanwhile
    # the environment is kept busy and event B queued, younger: A is recorded when its retry comes due, not once B
    # has gone through (after the busy environment frees up).
    fn = serve(
        "python/stamps",
        env={"STAMP_DIR": str(tmp_path)},
        reserved_concurrency=1,
        retry_delays_s=(1.0, 1.0),
        max_event_age_s=0.9,
    )
    a = send(fn, {"key": "a"})
    fn.wait_for(lambda emu: fn.emulator.emulator.async_status()["functions"][fn.name]["retrying"] == 1)
    busy = threading.Thread(target=fn.invoke, args=({"hold_s": 4},), kwargs={"tail": False})
    busy.start()
    fn.wait_envs(lambda envs: [e["state"] for e in envs] == ["invoking"])
    time.sleep(0.3)  # wait-ok: B must be younger than A by more than A's margin over the maximum age (0.1 s)
    send(fn, {"key": "b"})
    fn.wait_for(lambda emu: any(r["requestContext"]["requestId"] == a for r in failures(fn)))
    assert busy.is_alive()  # recorded while B still waits for the environment
    busy.join()
    (record,) = [r for r in failures(fn) if r["requestContext"]["requestId"] == a]
    assert record["requestContext"]["condition"] == "EventAgeExceeded"


def test_a_throttled_queue_waits_without_burning_cpu(serve, tmp_path):
    # The emulator runs in this process: its CPU time while an event waits for the one busy environment, after a
    # second event arrived (which wakes the queue), is this process's. Waiting costs next to nothing; a queue that
    # polls for capacity burns a core, a good part of it even on a loaded machine.
    fn = serve("python/stamps", env={"STAMP_DIR": str(tmp_path)}, reserved_concurrency=1, max_retry_attempts=0)
    busy = threading.Thread(target=fn.invoke, args=({"hold_s": 3},), kwargs={"tail": False})
    busy.start()
    fn.wait_envs(lambda envs: [e["state"] for e in envs] == ["invoking"])
    send(fn, {"key": "first"})
    send(fn, {"key": "second"})
    fn.wait_for(lambda emu: fn.emulator.emulator.async_status()["functions"][fn.name]["queued"] == 2)
    cpu_s = time.process_time()
    time.sleep(1.5)  # wait-ok: the period whose CPU use is measured, while the environment stays busy
    spent_s = time.process_time() - cpu_s
    assert busy.is_alive()
    assert spent_s < 0.2
    busy.join()
    fn.wait_for(lambda emu: len(failures(fn)) == 2)  # both delivered once the environment came free (and failed)

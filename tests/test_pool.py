"""Many environments: concurrency limits, placement, recycling, proactive INIT, leaks, reset_on_timeout."""

from __future__ import annotations

import gc
import os
import signal
import threading
import weakref
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

pytestmark = pytest.mark.timeout(60)

SAMPLES = Path(__file__).parent.parent / "samples"


def busy(fn, seconds: float, count: int = 1) -> list:
    """``count`` invocations that hold their environments for ``seconds``, running in threads."""
    pool = ThreadPoolExecutor(count)
    futures = [pool.submit(fn.invoke, {"action": "sleep", "seconds": seconds}, tail=False) for _ in range(count)]
    pool.shutdown(wait=False)
    return futures


def test_concurrent_invocations_get_their_own_environments(serve):
    fn = serve("python/basic")
    with ThreadPoolExecutor(3) as pool:
        pids = list(pool.map(lambda _: fn.invoke({"action": "sleep", "seconds": 0.5}, tail=False), range(3)))
    assert all(r.payload == "slept" for r in pids)
    envs = fn.environments()
    assert len(envs) == 3
    assert sorted(env["invocations"] for env in envs) == [1, 1, 1]


def test_reserved_concurrency_throttles_with_the_lambda_reason(serve):
    fn = serve("python/basic", reserved_concurrency=1)
    (running,) = busy(fn, 1.0)
    fn.wait_envs(lambda envs: len(envs) == 1 and envs[0]["state"] == "invoking")
    with pytest.raises(fn.client.exceptions.TooManyRequestsException) as raised:
        fn.client.invoke(FunctionName="fn", Payload=b'{"action": "echo"}')
    assert raised.value.response["Reason"] == "ReservedFunctionConcurrentInvocationLimitExceeded"
    assert raised.value.response["ResponseMetadata"]["HTTPStatusCode"] == 429
    assert running.result().payload == "slept"
    assert fn.invoke({"action": "echo"}).function_error is None  # free again


def test_account_concurrency(serve):
    fn = serve("python/basic", server={"account_concurrency": 2})
    futures = busy(fn, 1.0, count=2)
    fn.wait_envs(lambda envs: sum(env["state"] == "invoking" for env in envs) == 2)
    with pytest.raises(fn.client.exceptions.TooManyRequestsException) as raised:
        fn.client.invoke(FunctionName="fn", Payload=b'{"action": "echo"}')
    assert raised.value.response["Reason"] == "ConcurrentInvocationLimitExceeded"
    assert [f.result().payload for f in futures] == ["slept", "slept"]


@pytest.mark.parametrize(("placement", "distinct"), [("mru", 1), ("lru", 2)])
def test_placement_policy(serve, placement, distinct):
    fn = serve("python/basic", placement=placement)
    for future in busy(fn, 0.3, count=2):  # two environments
        future.result()
    fn.wait_envs(lambda envs: len(envs) == 2 and all(env["state"] == "frozen" for env in envs))
    pids = [fn.invoke({"action": "pid"}).payload for _ in range(4)]
    assert len(set(pids)) == distinct
    if placement == "lru":
        assert pids[0] != pids[1] and pids[0] == pids[2]


def test_recycled_after_max_invocations(serve):
    fn = serve("python/basic", max_invocations=2)
    first = [fn.invoke({"action": "pid"}).payload for _ in range(2)]
    third = fn.invoke({"action": "pid"})
    assert first[0] == first[1] != third.payload
    assert "Init Duration" in third.log
    fn.wait_envs(lambda envs: len(envs) == 1)


def test_recycled_after_idle_timeout(serve):
    fn = serve("python/basic", idle_timeout_s=0.3)
    fn.invoke({"action": "echo"})
    fn.wait_envs(lambda envs: envs == [])  # retired while idle
    assert "Init Duration" in fn.invoke({"action": "echo"}).log


def test_recycled_at_max_age_only_once_idle(serve):
    fn = serve("python/basic", max_age_s=0.5)
    first = fn.invoke({"action": "sleep", "seconds": 1.0})  # still busy when it comes of age
    assert first.payload == "slept"
    fn.wait_envs(lambda envs: envs == [])
    assert "Init Duration" in fn.invoke({"action": "echo"}).log


def test_prewarm_runs_init_on_environments_never_invoked(serve, tmp_path):
    init_log = tmp_path / "init.log"
    fn = serve("python/init_marker", prewarm=2, env={"INIT_LOG": str(init_log)})
    fn.wait_envs(lambda envs: len(envs) == 2 and all(env["state"] == "frozen" for env in envs))
    assert len(init_log.read_text().splitlines()) == 2
    assert all(env["invocations"] == 0 for env in fn.environments())
    result = fn.invoke({})
    assert "Init Duration" not in result.log  # served warm by a prewarmed environment


def test_replacement_initialises_beside_the_environment_it_replaces(serve, tmp_path):
    init_log = tmp_path / "init.log"
    fn = serve(
        "python/init_marker",
        reserved_concurrency=1,
        max_invocations=1,
        replace_before_retire=True,
        env={"INIT_LOG": str(init_log)},
    )
    old_pid = fn.invoke({}).payload["pid"]
    fn.wait_envs(lambda envs: len(envs) == 1 and envs[0]["pid"] != old_pid and envs[0]["state"] == "frozen")
    inits = init_log.read_text().splitlines()
    assert inits == [f"init {old_pid}", f"init {fn.environments()[0]['pid']}"]
    events = [(e.kind, e.subject, e.detail) for e in fn.emulator.emulator.timeline.events]
    old_env = next(s for k, s, d in events if k == "spawn")
    new_env = next(s for k, s, d in events if k == "spawn" and s != old_env)
    ready = next(i for i, (k, s, d) in enumerate(events) if s == new_env and k == "state" and d["new"] == "ready")
    stopped = next(i for i, (k, s, d) in enumerate(events) if s == old_env and k == "stopped")
    assert ready < stopped  # the replacement finished INIT while the old environment was still there
    assert fn.invoke({}).payload["pid"] != old_pid


def test_leak_detector_flags_the_seed_sample(serve):
    fn = serve(str(SAMPLES / "python/warm_state_leak/leaky"), detect_leaks=True)
    first = fn.invoke({"queryStringParameters": {"message": "hoge-secret"}})
    assert first.payload["body"] == "coldstart"
    second = fn.invoke({"queryStringParameters": {"message": "fuga"}})
    assert second.payload["body"] == "warmstart, message=hoge-secret"
    assert f"LEAK RequestId: {second.request_id}\tresponse carries 'hoge-secret'" in second.log
    (env,) = fn.environments()
    assert env["leaks"] == [
        {"request_id": second.request_id, "value": "hoge-secret", "from": first.request_id, "where": "response"}
    ]


def test_leak_detector_is_silent_for_the_fixed_sample(serve):
    fn = serve(str(SAMPLES / "python/warm_state_leak/fixed"), detect_leaks=True)
    for message in ("hoge-secret", "fuga", "piyo"):
        result = fn.invoke({"queryStringParameters": {"message": message}})
        assert result.payload["body"].endswith(f"message={message}")
        assert "LEAK" not in result.log
    assert fn.environments()[0]["leaks"] == []


def test_reset_on_timeout_off_reuses_the_frozen_environment(serve):
    fn = serve("python/basic", timeout_s=1, reset_on_timeout=False)
    pid = fn.invoke({"action": "pid"}).payload
    timed_out = fn.invoke({"action": "sleep", "seconds": 1.5})
    assert timed_out.payload["errorType"] == "Sandbox.Timedout"
    (env,) = fn.environments()
    assert env["state"] == "frozen" and env["suspended"] is True and env["pid"] == pid
    after = fn.invoke({"action": "pid"})  # the old handler runs on first, then this one
    assert after.function_error is None and after.payload == pid
    assert "Init Duration" not in after.log


def test_functions_reach_the_emulator_through_aws_endpoint_url_lambda(serve):
    fn = serve("python/basic")
    env = fn.invoke({"action": "env"}).payload
    assert env["AWS_ENDPOINT_URL_LAMBDA"] == fn.emulator.url


def test_one_invocation_per_environment_under_load(serve):
    fn = serve("python/basic")
    seen: dict[int, int] = {}
    lock = threading.Lock()

    def call(_):
        pid = fn.invoke({"action": "pid"}, tail=False).payload
        with lock:
            seen[pid] = seen.get(pid, 0) + 1

    with ThreadPoolExecutor(8) as pool:
        list(pool.map(call, range(80)))
    envs = fn.environments()
    assert sum(seen.values()) == 80
    assert sum(env["invocations"] for env in envs) == 80
    assert len(envs) <= 8


@pytest.mark.parametrize(
    "ending", ["killed while frozen", "timed out", "recycled", "killed beside an extension not told of SHUTDOWN"]
)
def test_a_stopped_environment_is_freed_at_once(serve, ending, tmp_path):
    """Once stopped, nothing keeps an environment: reference counting frees it (the cycle collector is off here),
    so a long run that keeps replacing environments keeps its memory flat. The extension's case: it is still
    waiting in event/next when the environment goes."""
    if ending.endswith("SHUTDOWN"):
        env = {"EXT_LOG": str(tmp_path / "ext.log"), "EXT_EVENTS": "INVOKE"}
        fn = serve("python/with_extension", timeout_s=1, env=env)
    else:
        fn = serve("python/basic", timeout_s=1, max_invocations=1 if ending == "recycled" else None)
    created: list[weakref.ref] = []

    async def watch(emu):
        emu.functions["fn"].listeners.append(lambda env: created.append(weakref.ref(env)))

    fn.emulator.call(watch)
    gc.collect()
    gc.disable()
    try:
        assert fn.invoke({"action": "echo"}, tail=False).function_error is None
        (ref,) = created
        environment = ref()
        pid = environment.pid if environment is not None else None  # a recycled one may be gone already
        del environment
        if ending.startswith("killed"):
            os.kill(pid, signal.SIGKILL)
        elif ending == "timed out":
            timed_out = fn.invoke({"action": "sleep", "seconds": 5}, tail=False)
            assert timed_out.payload["errorType"] == "Sandbox.Timedout"
        fn.wait_envs(lambda envs: all(e["pid"] != pid for e in envs))
        assert ref() is None, f"still referenced by {[type(r).__name__ for r in gc.get_referrers(ref())]}"
    finally:
        gc.enable()

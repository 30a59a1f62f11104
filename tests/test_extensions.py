"""The Extensions API with a real external extension process: INVOKE and SHUTDOWN events, the freeze point
waiting for the extension, crashes."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

pytestmark = pytest.mark.timeout(60)


def extension_function(serve, tmp_path, **settings):
    log = tmp_path / "ext.log"
    env = {"EXT_LOG": str(log), **settings.pop("env", {})}
    return serve("python/with_extension", env=env, **settings), log


def test_extension_gets_invoke_events_and_delays_the_freeze(serve, tmp_path):
    fn, log = extension_function(serve, tmp_path, env={"EXT_WORK_S": "0.4"})
    result = fn.invoke({})
    request_id = result.payload["request_id"]
    assert "EXTENSION\tName: recorder\tState: Ready\tEvents: [INVOKE, SHUTDOWN]" in result.log
    lines = log.read_text().splitlines()
    assert lines[0] == "registered fn"
    assert lines[1] == f"invoke {request_id} arn:aws:lambda:us-east-1:000000000000:function:fn"
    assert lines[2] == f"done {request_id}"  # REPORT waited for the extension to be back in event/next
    duration = float(re.search(r"\tDuration: ([0-9.]+) ms", result.log)[1])
    assert duration >= 400
    (env,) = fn.environments()
    assert env["state"] == "frozen"


def test_environment_freezes_only_when_the_extension_is_back_in_next(serve, tmp_path):
    fn, log = extension_function(serve, tmp_path, env={"EXT_WORK_S": "0.5"})
    fn.invoke({})
    result = fn.invoke({}, tail=False)  # answered as soon as the runtime responds
    (env,) = fn.environments()
    assert env["state"] == "invoking"  # the extension is still at work: no freeze yet
    assert f"done {result.payload['request_id']}" not in log.read_text()
    fn.wait_envs(lambda envs: envs[0]["state"] == "frozen")
    assert f"done {result.payload['request_id']}" in log.read_text()
    assert fn.wait_kernel_frozen(env["id"])


def test_shutdown_event_when_the_environment_is_retired(serve, tmp_path):
    fn, log = extension_function(serve, tmp_path, max_invocations=1)
    fn.invoke({})
    fn.wait_envs(lambda envs: envs == [])
    assert log.read_text().splitlines()[-1] == "shutdown spindown"


def test_shutdown_event_after_a_timeout(serve, tmp_path):
    fn, log = extension_function(serve, tmp_path, timeout_s=1)
    result = fn.invoke({"sleep_s": 5})
    assert result.payload["errorType"] == "Sandbox.Timedout"
    fn.wait_envs(lambda envs: envs == [])
    assert log.read_text().splitlines()[-1] == "shutdown timeout"


def test_extension_crash_during_init(serve, tmp_path):
    fn, _ = extension_function(serve, tmp_path, env={"EXT_CRASH_AFTER_REGISTER": "1"})
    result = fn.invoke({})
    assert result.function_error == "Unhandled"
    assert result.payload["errorType"] == "Extension.Crash"
    assert "extension recorder exited: exit status 3" in result.payload["errorMessage"]


def test_extension_crash_during_an_invocation(serve, tmp_path):
    fn, _ = extension_function(serve, tmp_path, env={"EXT_WORK_S": "0.5"})
    fn.invoke({})
    result = fn.invoke({"crash_extension": True})
    assert result.function_error == "Unhandled"
    assert result.payload["errorType"] == "Extension.Crash"
    assert "extension recorder exited: signal: killed" in result.payload["errorMessage"]
    fn.wait_envs(lambda envs: envs == [])  # the environment is replaced
    after = fn.invoke({})
    assert after.function_error is None
    assert "Init Duration" in after.log


def test_extension_process_is_frozen_with_the_runtime(serve, tmp_path):
    fn, log = extension_function(serve, tmp_path, freezer="cgroup2")
    fn.invoke({})
    (env,) = fn.environments()
    assert fn.wait_kernel_frozen(env["id"])
    pid = int(Path(str(log) + ".pid").read_text())
    cgroup = next(line.split(":", 2)[2] for line in Path(f"/proc/{pid}/cgroup").read_text().splitlines()
                  if line.startswith("0::"))
    assert cgroup.endswith(f"/{env['id']}")

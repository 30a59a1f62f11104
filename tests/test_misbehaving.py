"""Runtimes that misbehave: killed from outside while frozen, flooding their output."""

from __future__ import annotations

import os
import signal

import pytest

from conftest import FREEZERS

pytestmark = pytest.mark.timeout(120)


@pytest.mark.parametrize("freezer", [f for f in FREEZERS if f != "cgroup1"])
def test_runtime_killed_while_frozen_is_noticed_and_replaced(serve, freezer):
    # (Under cgroup v1 a frozen task acts on SIGKILL only once thawed: it dies as the next event is handed over.)
    fn = serve("python/basic", freezer=freezer)
    first = fn.invoke({"action": "pid"}).payload
    (env,) = fn.environments()
    assert env["state"] == "frozen"
    os.kill(first, signal.SIGKILL)  # as the OOM killer would
    fn.wait_envs(lambda envs: envs == [])  # noticed at once: the environment is gone
    after = fn.invoke({"action": "pid"})
    assert after.function_error is None and after.payload != first
    assert "Init Duration" in after.log


def test_flooding_output_stays_bounded(serve):
    fn = serve("python/basic", handler="app.flood", timeout_s=30)
    result = fn.invoke({"megabytes": 40})
    assert result.payload == "flooded"
    assert len(result.log.encode()) <= 4096  # the tail is still the last 4 KB
    assert "flood done" in result.log and result.log.rstrip().splitlines()[-1].startswith("REPORT")
    longest = max(len(line) for line in fn.lines)
    assert longest <= 256 * 1024  # a line without a newline is cut, never held whole
    assert fn.invoke({"megabytes": 1}).payload == "flooded"  # never blocked on a full pipe


def test_allocating_past_the_memory_size_is_out_of_memory(serve):
    fn = serve("python/basic", handler="app.allocate", memory_mb=128, timeout_s=30)
    assert fn.invoke({"megabytes": 16}).payload == 16
    result = fn.invoke({"megabytes": 400})
    assert result.function_error == "Unhandled"
    assert result.payload["errorType"] == "Runtime.OutOfMemory"
    assert result.payload["errorMessage"].endswith("Runtime exited with error: signal: killed")
    assert "Status: error\tError Type: Runtime.OutOfMemory" in result.log
    assert fn.invoke({"megabytes": 16}).payload == 16  # replaced

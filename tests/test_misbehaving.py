"""Runtimes that misbehave: killed from outside while frozen, flooding their output, out of memory, and custom
runtimes (``provided/rogue``) that break the Runtime API's rules. Each gets Lambda's outcome while the function's
other environments and other functions keep serving."""

from __future__ import annotations

import json
import os
import signal
from typing import Any

import pytest

from conftest import FREEZERS, FUNCTIONS, Served
from emulator import FunctionConfig

pytestmark = pytest.mark.timeout(120)

ROGUE = {"runtime": "provided", "handler": "rogue"}


def neighbour(fn: Served) -> Served:
    """A second, well-behaved function served by the same emulator."""
    config = FunctionConfig(name="neighbour", code_dir=FUNCTIONS / "provided/python", handler="x", runtime="provided")

    async def add(emu: Any) -> None:
        emu.add_function(config)

    fn.emulator.call(add)
    return Served(fn.emulator, fn.client, config.name, fn.sink)


def serves(other: Served) -> bool:
    result = other.invoke({"ping": 1}, tail=False)
    return result.function_error is None and result.payload["event"] == {"ping": 1}


def rogue(fn: Served, what: str) -> list[dict[str, Any]]:
    """What the rogue runtime observed, from its ``ROGUE {json}`` log lines."""
    seen = [json.loads(line[6:]) for line in fn.lines if line.startswith("ROGUE ")]
    return [entry for entry in seen if entry["what"] == what]


def report_of(fn: Served, request_id: str) -> str:
    return next(line for line in fn.lines if line.startswith(f"REPORT RequestId: {request_id}"))


@pytest.mark.parametrize("freezer", [f for f in FREEZERS if f != "cgroup1"])
def test_runtime_killed_while_frozen_is_noticed_and_replaced(serve, freezer):
    # (Under cgroup v1 a frozen task acts on SIGKILL only once thawed: it dies as the next event is handed over.)
    fn = serve("python/basic", freezer=freezer)
    other = neighbour(fn)
    first = fn.invoke({"action": "pid"}).payload
    (env,) = fn.environments()
    assert env["state"] == "frozen"
    os.kill(first, signal.SIGKILL)  # as the OOM killer would
    fn.wait_envs(lambda envs: envs == [])  # noticed at once: the environment is gone
    assert serves(other)
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


# ------------------------------------------------------------------------------------ rogue custom runtimes
def test_answered_but_never_back_in_next_is_not_reused_and_is_reclaimed_at_the_timeout(serve):
    """RAPID ends an invocation when the runtime, having answered, calls `next` again; until then the environment
    is busy (never frozen: the runtime is not waiting), and the function timeout resets it. Lambda routes the
    next invocation to another environment meanwhile."""
    fn = serve("provided/rogue", timeout_s=10, **ROGUE)
    other = neighbour(fn)
    hung = fn.invoke({"action": "hang_after_response"}, tail=False)
    assert hung.function_error is None and hung.payload["event"] == {"action": "hang_after_response"}
    (env,) = fn.environments()
    assert env["phase"] == "responded" and env["kernel_frozen"] is False
    after = fn.invoke({"action": "echo"})
    assert after.function_error is None
    assert after.payload["pid"] != hung.payload["pid"] and "Init Duration" in after.log  # another environment
    assert [e["phase"] for e in fn.environments() if e["id"] == env["id"]] == ["responded"]  # before its timeout
    assert serves(other)
    fn.wait_envs(lambda envs: env["id"] not in {e["id"] for e in envs}, timeout_s=30)
    assert "Status: timeout" in report_of(fn, hung.request_id)
    assert fn.invoke({"action": "echo"}).payload["pid"] == after.payload["pid"]  # the healthy one serves on


def test_response_posted_after_the_invocation_timed_out_is_refused(serve):
    """With an extension registered, a timeout SIGTERMs the runtime before the kill (Lambda's SHUTDOWN phase):
    the runtime's late answer is refused as RAPID refuses an answer for a request already replied to."""
    fn = serve("provided/rogue", timeout_s=1, env={"ROGUE_EXTENSION": "1"}, **ROGUE)
    other = neighbour(fn)
    assert fn.invoke({"action": "echo"}).function_error is None
    timed_out = fn.invoke({"action": "sleep", "seconds": 30})
    assert timed_out.payload["errorType"] == "Sandbox.Timedout"
    fn.wait_envs(lambda envs: envs == [])
    (late,) = rogue(fn, "late response")
    assert late["request_id"] == timed_out.request_id
    assert late["status"] == 400 and late["body"]["errorType"] == "InvalidRequestID"
    assert serves(other)
    after = fn.invoke({"action": "echo"})
    assert after.payload["event"] == {"action": "echo"} and "Init Duration" in after.log  # never the late answer


def test_second_concurrent_next_is_refused_and_the_first_serves_on(serve):
    """Two threads long-poll `next` at once. One poll is the runtime's; the other is refused with
    InvalidStateTransition, so no event is ever handed out twice (RAPID would park it and later hand it an
    event, or the current one again)."""
    fn = serve("provided/rogue", env={"ROGUE_POLLERS": "2"}, **ROGUE)
    other = neighbour(fn)
    results = [fn.invoke({"action": "echo", "n": n}) for n in range(3)]
    # The refused poller reports from its own thread: when the environment froze before that thread printed, the
    # line comes out the next time the runtime is thawed, so invoke until it has.
    while not rogue(fn, "next refused") and len(results) < 8:
        results.append(fn.invoke({"action": "echo", "n": len(results)}))
    assert [r.payload["event"]["n"] for r in results] == list(range(len(results)))
    (refused,) = rogue(fn, "next refused")
    assert refused["status"] == 403 and refused["body"]["errorType"] == "InvalidStateTransition"
    seen = [json.loads(line[6:]) for line in fn.lines if line.startswith("ROGUE ")]
    after_refusal = seen[seen.index(refused) + 1 :]
    assert {entry["poller"] for entry in after_refusal} == {"poller-0", "poller-1"} - {refused["poller"]}
    assert results[-1].payload["poller"] != refused["poller"]
    handed = [entry["request_id"] for entry in rogue(fn, "event")]
    assert sorted(handed) == sorted(r.request_id for r in results)  # each event handed over exactly once
    (env,) = fn.environments()
    assert env["state"] == "frozen" and fn.wait_kernel_frozen(env["id"])  # frozen whole, not half
    assert serves(other)


def test_exit_during_init_is_exit_error(serve):
    fn = serve("provided/rogue", env={"ROGUE_INIT_EXIT": "7"}, **ROGUE)
    other = neighbour(fn)
    result = fn.invoke({"action": "echo"})
    assert result.function_error == "Unhandled"
    assert result.payload["errorType"] == "Runtime.ExitError"
    message = result.payload["errorMessage"]
    assert message == f"RequestId: {result.request_id} Error: Runtime exited with error: exit status 7"
    # INIT failed, was retried inside the invocation, and failed again.
    assert len(rogue(fn, "exiting during INIT")) == 2
    assert sum(line.startswith("INIT_REPORT") and "Status: error" in line for line in fn.lines) == 1
    assert "Status: error\tError Type: Runtime.ExitError" in report_of(fn, result.request_id)
    fn.wait_envs(lambda envs: envs == [])
    assert serves(other)


def test_exit_during_init_once_is_retried_inside_the_invocation(serve, tmp_path):
    marker = tmp_path / "exited-once"
    fn = serve("provided/rogue", env={"ROGUE_INIT_EXIT": "7", "ROGUE_INIT_EXIT_MARKER": str(marker)}, **ROGUE)
    other = neighbour(fn)
    result = fn.invoke({"action": "echo"})
    assert result.function_error is None and result.payload["event"] == {"action": "echo"}
    assert len(rogue(fn, "exiting during INIT")) == 1
    assert serves(other)
    assert fn.invoke({"action": "echo"}).payload["pid"] == result.payload["pid"]  # warm from then on

"""Freezing, proven for every backend this machine has: threads stop, the kernel says frozen, clocks go on."""

from __future__ import annotations

import asyncio
import os
import subprocess
import time
from pathlib import Path

import pytest

from conftest import FREEZERS, freezer_problem, require
from emulator.engine.freeze import FreezeControl
from emulator.engine.freezer import create_freezer

pytestmark = pytest.mark.timeout(60)


@pytest.mark.parametrize("freezer", FREEZERS)
def test_threads_do_not_run_while_frozen(serve, freezer):
    fn = serve("python/basic", freezer=freezer)
    fn.invoke({"action": "ticks"}, tail=False)  # starts a thread that ticks every 10 ms
    before = fn.invoke({"action": "ticks"}, tail=False).payload
    time.sleep(0.5)  # wait-ok: the frozen period under test
    after = fn.invoke({"action": "ticks"}, tail=False).payload
    assert after - before <= 5, f"the thread ran while frozen: {after - before} ticks in 0.5 s"
    # ...and runs again once thawed: inside a handler that takes 0.3 s it ticks.
    fn.invoke({"action": "sleep", "seconds": 0.3}, tail=False)
    thawed = fn.invoke({"action": "ticks"}, tail=False).payload
    assert thawed - after >= 10


def test_threads_run_between_invocations_without_freezer(serve):
    fn = serve("python/basic", freezer="none")
    fn.invoke({"action": "ticks"}, tail=False)
    before = fn.invoke({"action": "ticks"}, tail=False).payload
    time.sleep(0.5)  # wait-ok: the idle period under test
    after = fn.invoke({"action": "ticks"}, tail=False).payload
    assert after - before >= 20


@pytest.mark.parametrize("freezer", FREEZERS)
def test_kernel_reports_frozen(serve, freezer):
    fn = serve("python/basic", freezer=freezer)
    fn.invoke({"action": "echo"})  # with the log tail, the answer comes once the runtime is back in `next`
    (env,) = fn.environments()
    assert env["state"] == "frozen"
    assert env["freezer"] == freezer
    assert fn.wait_kernel_frozen(env["id"])
    assert fn.environments()[0]["kernel_frozen"] is True
    pid = env["pid"]
    if freezer == "sigstop":
        assert "State:\tT" in Path(f"/proc/{pid}/status").read_text()
    else:
        cgroup = _cgroup_dir(pid, freezer)
        if freezer == "cgroup2":
            assert "frozen 1" in (cgroup / "cgroup.events").read_text()
        else:
            assert (cgroup / "freezer.state").read_text().strip() == "FROZEN"


def _cgroup_dir(pid: int, freezer: str) -> Path:
    for line in Path(f"/proc/{pid}/cgroup").read_text().splitlines():
        _, controllers, path = line.split(":", 2)
        if freezer == "cgroup2" and controllers == "":
            root = next(
                p for p in (Path("/sys/fs/cgroup/unified"), Path("/sys/fs/cgroup")) if (p / "cgroup.procs").exists()
            )
            return root / path.lstrip("/")
        if freezer == "cgroup1" and "freezer" in controllers.split(","):
            return Path("/sys/fs/cgroup/freezer") / path.lstrip("/")
    raise AssertionError(f"pid {pid} is in no {freezer} cgroup")


@pytest.mark.parametrize("freezer", FREEZERS)
def test_timer_from_invocation_one_fires_inside_invocation_two(serve, freezer):
    fn = serve("python/basic", freezer=freezer)
    first = fn.invoke({"action": "set_timer", "seconds": 1.0})
    time.sleep(2.0)  # wait-ok: the environment stays frozen 2 s, past the 1 s timer
    second = fn.invoke({"action": "read_timer"})
    # It fired on thaw, as invocation 2 was handed over (racing its handler), not at 1 s.
    assert second.payload["elapsed_s"] >= 1.9
    assert second.payload["fired_at"] >= second.payload["started"] - 0.05
    assert f"timer fired for {first.request_id}" in second.log  # invocation 1's line, in invocation 2's log


def test_timer_fires_between_invocations_without_freezer(serve):
    fn = serve("python/basic", freezer="none")
    first = fn.invoke({"action": "set_timer", "seconds": 1.0})
    time.sleep(2.0)  # wait-ok: the idle period under test
    second = fn.invoke({"action": "read_timer"})
    assert second.payload["fired_before_handler"] is True
    # On its own time, during the 2 s idle period, not at the next invocation: 0.9 s of room for a loaded CI.
    assert 0.9 <= second.payload["elapsed_s"] < 1.9
    assert f"timer fired for {first.request_id}" not in second.log


@pytest.mark.parametrize("freezer", FREEZERS)
def test_crash_and_timeout_leave_no_cgroup_or_process(serve, freezer):
    fn = serve("python/basic", freezer=freezer, timeout_s=1)
    fn.invoke({"action": "echo"}, tail=False)
    (env,) = fn.environments()
    pid = env["pid"]
    cgroup = None if freezer == "sigstop" else _cgroup_dir(pid, freezer)
    assert fn.invoke({"action": "sleep", "seconds": 10}, tail=False).function_error == "Unhandled"
    fn.invoke({"action": "echo"}, tail=False)  # a fresh environment serves this one
    assert not Path(f"/proc/{pid}").exists()
    if cgroup is not None:
        assert not cgroup.exists()


def test_cgroup1_keeps_a_frozen_anchor_for_the_instance_and_removes_it():
    """The v1 freezer toggles a kernel static key whenever the count of frozen cgroups crosses zero (190 µs a freeze
    and thaw of a lone environment); an empty cgroup frozen while the instance runs keeps it on."""
    problem = freezer_problem("cgroup1")
    require(problem is None, f"freezer cgroup1: {problem}")
    backend = create_freezer("cgroup1")
    anchor = backend.instance / "anchor"
    try:
        assert (anchor / "freezer.state").read_text().strip() == "FROZEN"
        assert (anchor / "cgroup.procs").read_text() == ""
    finally:
        backend.close()
    assert not anchor.exists() and not backend.instance.exists()


@pytest.mark.parametrize("freezer", FREEZERS)
@pytest.mark.asyncio
async def test_the_freeze_control_lists_every_process_of_the_environment_and_sees_them_frozen(freezer):
    """The Runtime API accepts connections from these processes alone: the runtime's children count too."""
    problem = freezer_problem(freezer)
    require(problem is None, f"freezer {freezer}: {problem}")
    backend = create_freezer(freezer)
    control = FreezeControl(backend, "e1")
    assert control.process_ids() == []  # no process started yet
    group = control.open()

    def join() -> None:  # as the environment's processes do before they exec
        for path in group.attach_paths:
            path.write_text(str(os.getpid()))

    runtime = await asyncio.create_subprocess_exec(
        "sh", "-c", "sleep 60 & echo $!; wait", stdout=subprocess.PIPE, preexec_fn=join, start_new_session=True
    )
    try:
        assert runtime.stdout is not None
        child = int(await runtime.stdout.readline())
        group.attached(runtime.pid)
        assert sorted(control.process_ids()) == sorted([runtime.pid, child])
        control.freeze()
        assert await control.wait_kernel_frozen(lambda: True, 10.0) is True
        control.thaw()
    finally:
        group.kill()
        await runtime.communicate()
        await group.remove()
        backend.close()

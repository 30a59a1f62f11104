"""The standby: the next environment's process, parked in its cgroups before the runtime's exec. INIT runs only in
environments that Lambda would initialise, Init Duration leaves out the time parked, --no-standby makes none, and
nothing is left once the emulator stops or is killed."""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
import signal
import subprocess
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from test_cli import Serve, cgroup_dirs, wait_gone

from conftest import FREEZERS, FUNCTIONS, freezer_problem, require

pytestmark = pytest.mark.timeout(60)

def _parked(pid: int) -> bool:
    """Whether ``pid`` is a shell waiting for its script (no runtime client exec'd in it)."""
    argv = _cmdline(pid).split(b"\0")
    return argv[:2] == [b"/bin/sh", b"-c"] and argv[2].endswith(b". /dev/stdin")


def _cmdline(pid: int) -> bytes:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return b""


def _parked_pid(fn) -> int:
    """Await the function's standby; its parked process's pid."""
    fn.wait_for(lambda emu: emu.functions[fn.name].standby.pid is not None)
    return fn.emulator.emulator.functions[fn.name].standby.pid


@pytest.mark.parametrize("lambda_paths", [True, False], ids=["lambda-paths", "real-paths"])
def test_init_runs_only_in_environments_that_are_invoked(serve, tmp_path, lambda_paths):
    # With Lambda's paths the process parks in its mount namespace (made between fork and exec); without, its shell
    # joins the cgroups itself.
    init_log = tmp_path / "init.log"
    fn = serve("python/init_marker", env={"INIT_LOG": str(init_log)}, lambda_paths=lambda_paths)
    parked = _parked_pid(fn)
    assert _parked(parked)  # the runtime client has not been exec'd: no INIT ran
    assert not init_log.exists()
    assert fn.environments() == []
    result = fn.invoke({})
    assert "Init Duration" in result.log
    assert result.payload["pid"] == parked  # the new environment is the parked process, exec'd now
    assert init_log.read_text().splitlines() == [f"init {parked}"]
    following = _parked_pid(fn)  # the next one, made once that environment was idle
    assert following != parked and _parked(following)
    assert init_log.read_text().splitlines() == [f"init {parked}"]  # still one INIT: the parked one ran none


def test_init_duration_leaves_out_the_time_parked(serve):
    fn = serve("python/basic")
    parked = _parked_pid(fn)
    time.sleep(1.5)  # wait-ok: time spent parked is what must stay out of Init Duration
    sent = time.monotonic()
    result = fn.invoke({"action": "echo"})
    answered_ms = (time.monotonic() - sent) * 1000
    assert fn.environments()[0]["pid"] == parked
    init_ms = float(result.log.split("Init Duration: ")[1].split(" ms")[0])
    # INIT happened between the request and its answer; counted from the park, it would exceed the whole request.
    assert 0 < init_ms <= answered_ms


def test_a_standby_made_for_other_settings_is_let_go(serve):
    fn = serve("python/basic")
    pool = fn.emulator.emulator.functions[fn.name]
    parked = _parked_pid(fn)
    # The function's memory size changes (as a hot reload of its settings would): the standby's memory cgroup no
    # longer fits, so the new environment starts its own process and the standby is killed.
    pool.config = dataclasses.replace(pool.config, memory_mb=256)
    result = fn.invoke({"action": "echo"})
    assert "Memory Size: 256 MB" in result.log
    assert fn.environments()[0]["pid"] != parked
    assert wait_gone(parked, 5.0)
    following = _parked_pid(fn)  # the next standby is made for the settings as they are now
    with ThreadPoolExecutor(2) as callers:  # the first environment busy: the second adopts the new standby
        results = list(callers.map(lambda _: fn.invoke({"action": "sleep", "seconds": 0.5}), range(2)))
    assert all("Memory Size: 256 MB" in r.log for r in results)
    assert following in {env["pid"] for env in fn.environments()}


@pytest.mark.parametrize("lambda_paths", [True, False], ids=["lambda-paths", "real-paths"])
def test_without_a_standby_the_runtime_starts_as_an_ordinary_start_would(serve, lambda_paths):
    """No standby: the runtime is parked and released at once (a vfork, not a fork of the emulator), and runs as the
    ordinary start would run it: in cgroups of its own, in its own process group, with Lambda's variables alone, at
    /var/task where the kernel allows a private mount namespace."""
    from emulator.engine import lambda_paths as paths

    fn = serve("python/basic", standby=False, lambda_paths=lambda_paths)
    env = fn.invoke({"action": "env"}).payload
    pid = fn.invoke({"action": "pid"}).payload
    assert fn.emulator.emulator.functions[fn.name].standby.made == 0
    assert not _parked(pid) and os.getpgid(pid) == pid
    assert cgroup_dirs(pid), "the runtime is in no cgroup of its own"
    assert "PWD" not in env and "OLDPWD" not in env  # the parked shell's own are not passed on
    assert env["AWS_LAMBDA_FUNCTION_NAME"] == fn.name
    at_var_task = lambda_paths and paths.available()
    assert env["LAMBDA_TASK_ROOT"] == ("/var/task" if at_var_task else str(FUNCTIONS / "python/basic"))


def test_no_standby_makes_no_process_ahead(serve):
    fn = serve("python/basic", standby=False)
    assert fn.invoke({"action": "echo"}).payload == {"action": "echo"}
    pool = fn.emulator.emulator.functions[fn.name]
    assert pool.standby.made == 0 and pool.standby.pid is None
    assert not any(e.kind == "standby" for e in fn.emulator.emulator.timeline.events)


def _trampolines_of(pid: int) -> list[int]:
    found = []
    for task in Path(f"/proc/{pid}/task").iterdir():
        for child in (task / "children").read_text().split():
            if _parked(int(child)):
                found.append(int(child))
    return found


def _await_parked(serve: Serve) -> int:
    """Read serve's log (-v) up to its standby's line; the parked pid."""
    for line in serve.proc.stderr:  # type: ignore[union-attr]
        serve.stderr.append(line)
        if "standby process" in line:
            return int(line.split("standby process ")[1].split()[0])
    raise AssertionError(f"no standby was parked: {''.join(serve.stderr)}")


@pytest.mark.parametrize("freezer", FREEZERS)
@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGKILL], ids=["SIGTERM", "SIGKILL"])
def test_nothing_parked_is_left_after_serve_stops(freezer, sig):
    require(freezer_problem(freezer) is None, f"freezer {freezer}: {freezer_problem(freezer)}")
    serve = Serve("--code-dir", str(FUNCTIONS / "python/basic"), "--handler", "app.handler",
                  "--freezer", freezer, "--no-reload", verbose=True)  # its log says when the standby is parked
    parked = _await_parked(serve)
    assert _trampolines_of(serve.proc.pid) == [parked]
    cgroups = cgroup_dirs(parked)
    if freezer != "sigstop":
        assert cgroups, "the parked process is in no cgroup of its own"
    status = serve.stop(sig)
    if sig != signal.SIGKILL:
        assert status == 0
    assert wait_gone(parked, 2.0), f"parked process {parked} outlived the emulator ({freezer}, {sig.name})"
    if sig == signal.SIGKILL:  # the watchdog destroys the instance's cgroups: await its end
        for line in subprocess.run(["pgrep", "-f", "emulator.watchdog"], capture_output=True, text=True).stdout.split():
            if any(str(d.parent) in _cmdline(int(line)).decode(errors="replace") for d in cgroups):
                assert wait_gone(int(line), 5.0)
    for directory in cgroups:
        assert not directory.exists(), f"cgroup {directory} left behind"
        assert not directory.parent.exists(), f"the instance's cgroup {directory.parent} left behind"


def test_serve_no_standby_parks_nothing():
    serve = Serve("--code-dir", str(FUNCTIONS / "python/basic"), "--handler", "app.handler", "--no-standby",
                  "--no-reload", verbose=True)
    try:
        url = serve.url
        out = subprocess.run(
            ["curl", "-sS", "-d", '{"action": "echo"}', f"{url}/2015-03-31/functions/function/invocations"],
            capture_output=True, check=True,
        ).stdout
        assert json.loads(out) == {"action": "echo"}
        assert _trampolines_of(serve.proc.pid) == []
    finally:
        assert serve.stop(signal.SIGTERM) == 0
    assert "standby process" not in "".join(serve.stderr)


def test_a_parked_process_killed_from_outside_costs_the_invocation_nothing(serve):
    fn = serve("python/basic")
    parked = _parked_pid(fn)
    os.kill(parked, signal.SIGKILL)
    assert wait_gone(parked, 5.0) or Path(f"/proc/{parked}/stat").read_text().split()[2] == "Z"
    result = fn.invoke({"action": "echo"})
    assert result.payload == {"action": "echo"} and "Init Duration" in result.log
    (env,) = fn.environments()
    assert env["pid"] != parked  # started the ordinary way, in the same cgroups


ENV_PROBE = """import os


def handler(event, context):
    with open("marker.txt") as marker:  # relative: the working directory is the code directory, as /var/task
        text = marker.read()
    return {"env": sorted(os.environ), "values": dict(os.environ), "cwd": os.getcwd(), "marker": text,
            "pid": os.getpid()}
"""


def _probe_code(directory: Path, marker: str) -> Path:
    directory.mkdir(parents=True)
    (directory / "app.py").write_text(ENV_PROBE)
    (directory / "marker.txt").write_text(marker)
    return directory


def test_a_runtime_from_the_standby_sees_what_an_ordinary_start_gives(serve, tmp_path):
    code = _probe_code(tmp_path / "code", "one")
    parked_fn = serve(str(code), name="parked")
    parked = _parked_pid(parked_fn)
    from_standby = parked_fn.invoke({}).payload
    assert from_standby["pid"] == parked
    ordinary = serve(str(code), name="ordinary", standby=False).invoke({}).payload
    assert from_standby["env"] == ordinary["env"]  # the same variables: none of the parked shell's (PWD, OLDPWD)
    # and the same values (worked out at park time for the standby), but for what names the function, the emulator
    # (two serve here), the environment or the invocation: the standby's runtime got its own environment's Runtime
    # API address, not one of park time.
    own = {"AWS_LAMBDA_FUNCTION_NAME", "AWS_LAMBDA_LOG_GROUP_NAME", "AWS_LAMBDA_LOG_STREAM_NAME",
           "AWS_LAMBDA_RUNTIME_API", "AWS_ENDPOINT_URL_LAMBDA", "_X_AMZN_TRACE_ID"}
    assert {k: v for k, v in from_standby["values"].items() if k not in own} == {
        k: v for k, v in ordinary["values"].items() if k not in own
    }
    assert from_standby["values"]["AWS_LAMBDA_INITIALIZATION_TYPE"] == "on-demand"
    assert from_standby["values"]["AWS_LAMBDA_RUNTIME_API"] != ordinary["values"]["AWS_LAMBDA_RUNTIME_API"]
    assert from_standby["cwd"] == ordinary["cwd"] in (str(code), "/var/task")  # its real path, or Lambda's


def test_a_code_directory_replaced_since_the_park_is_the_one_the_runtime_sees(serve, tmp_path):
    code = _probe_code(tmp_path / "code", "old")
    fn = serve(str(code))
    stale = _parked_pid(fn)
    shutil.rmtree(code)  # as a build tool recreates its output directory
    _probe_code(code, "new")

    async def code_changed(emulator) -> None:  # what hot reload does on a change
        emulator.functions[fn.name].retire_all("code changed")

    fn.emulator.call(code_changed)
    assert wait_gone(stale, 5.0)  # made from the old directory: let go
    result = fn.invoke({}).payload
    assert result["marker"] == "new" and result["cwd"] in (str(code), "/var/task")


def test_a_cgroup_the_parked_shell_cannot_join_is_an_error_and_leaves_nothing(tmp_path):
    from emulator.engine.process import park
    from emulator.harness import spares

    spares.close()  # the next test's emulator, started by an earlier test's teardown, makes children of its own
    before = set(_children(os.getpid()))
    with pytest.raises(OSError):  # said by the shell, or by the preexec_fn where there is no setpriv
        park(tmp_path, [tmp_path / "no-such-cgroup" / "cgroup.procs"])
    assert set(_children(os.getpid())) == before  # killed and reaped


def _children(pid: int) -> list[int]:
    return [int(c) for task in Path(f"/proc/{pid}/task").iterdir() for c in (task / "children").read_text().split()]


@pytest.mark.parametrize("lambda_paths", [True, False], ids=["lambda-paths", "real-paths"])
def test_a_provided_bootstrap_runs_in_the_parked_process(serve, lambda_paths):
    # With Lambda's paths the command names /var/task/bootstrap: checked where the emulator sees it (the code's).
    fn = serve("provided/python", runtime="provided", handler="x", lambda_paths=lambda_paths)
    parked = _parked_pid(fn)
    fn.invoke({"n": 1})
    (env,) = fn.environments()
    assert env["pid"] == parked



# ------------------------------------------------------------------------------------ the harness's spare emulator
def _spare(freezer: str = "auto"):
    """The emulator started for the next ``LambdaFreeze(spare=True)`` of ``freezer`` (as a closing one starts it), and
    its spare process's pid once parked."""
    from emulator.harness import spares

    spares.close()  # what an earlier test's teardown started
    spares.start(freezer, None)
    emulator, _ = spares._started[(freezer, None)].result(30)

    async def spare_pid(emu) -> int | None:
        return await emu.spare_pid()

    pid = emulator.call(spare_pid)
    assert pid is not None and _parked(pid)
    return emulator, pid


def _standby_of(fn) -> int:
    """A harness function's standby, awaited: its parked process's pid."""
    emulator = fn._emulator
    emulator.wait_for(lambda emu: emu.functions[fn.name].standby.pid is not None)
    return emulator.emulator.functions[fn.name].standby.pid


def _memory_limit(pid: int) -> int:
    (limit,) = [int((d / name).read_text()) for d in cgroup_dirs(pid)
                for name in ("memory.limit_in_bytes", "memory.max") if (d / name).exists()]
    return limit


def _lambda_paths_or_not(lambda_paths: bool) -> None:
    from emulator.engine import lambda_paths as paths

    if lambda_paths:
        require(paths.available(), "needs a private mount namespace (root, or CAP_SYS_ADMIN)")


@pytest.mark.parametrize("lambda_paths", [True, False], ids=["lambda-paths", "real-paths"])
def test_the_next_tests_first_function_starts_in_the_spare_process(tmp_path, lambda_paths):
    from emulator.harness import LambdaFreeze, spares

    _lambda_paths_or_not(lambda_paths)
    emulator, spare = _spare()
    spare_dirs = cgroup_dirs(spare)
    assert len(spare_dirs) == 2  # the freezer's and the memory limit's
    init_log = tmp_path / "init.log"
    harness = LambdaFreeze(spare=True)
    try:
        fn = harness.function(FUNCTIONS / "python/init_marker", env={"INIT_LOG": str(init_log)}, memory=256,
                              lambda_paths=lambda_paths)
        assert fn.url == emulator.url  # the emulator started ahead, not one of its own
        assert _standby_of(fn) == spare and _parked(spare)  # its standby is the spare: nothing of it ran yet
        assert not init_log.exists()
        assert _memory_limit(spare) == 256 * 1024 * 1024  # the function's size, written when it was taken
        following = spares._started[("auto", None)]  # the next test's: it waits for this one's first INIT
        assert not following.done()
        result = fn.invoke({})
        assert result.payload == {"pid": spare} and "Init Duration" in result.log  # INIT, then the handler
        assert following.result(30)[0] is not emulator  # started meanwhile
        assert init_log.read_text().splitlines() == [f"init {spare}"]
        assert cgroup_dirs(spare) == spare_dirs  # the cgroups it was parked in
        other = harness.function(FUNCTIONS / "python/basic", lambda_paths=lambda_paths)
        assert _standby_of(other) != spare  # one spare per emulator: the next standby is made as usual
        assert other.invoke({"action": "echo"}).payload == {"action": "echo"}
    finally:
        harness.close()


@pytest.mark.parametrize("lambda_paths", [True, False], ids=["lambda-paths", "real-paths"])
def test_a_runtime_from_the_spare_sees_what_an_ordinary_start_gives(serve, tmp_path, lambda_paths):
    from emulator.harness import LambdaFreeze

    _lambda_paths_or_not(lambda_paths)
    code = _probe_code(tmp_path / "code", "one")
    _, spare = _spare()
    harness = LambdaFreeze(spare=True)
    try:
        from_spare = harness.function(code, name="spare", lambda_paths=lambda_paths).invoke({}).payload
    finally:
        harness.close()
    assert from_spare["pid"] == spare
    ordinary = serve(str(code), name="ordinary", standby=False, lambda_paths=lambda_paths).invoke({}).payload
    assert from_spare["env"] == ordinary["env"]
    own = {"AWS_LAMBDA_FUNCTION_NAME", "AWS_LAMBDA_LOG_GROUP_NAME", "AWS_LAMBDA_LOG_STREAM_NAME",
           "AWS_LAMBDA_RUNTIME_API", "AWS_ENDPOINT_URL_LAMBDA", "_X_AMZN_TRACE_ID"}
    assert {k: v for k, v in from_spare["values"].items() if k not in own} == {
        k: v for k, v in ordinary["values"].items() if k not in own
    }
    assert from_spare["cwd"] == ordinary["cwd"] == ("/var/task" if lambda_paths else str(code))
    assert from_spare["marker"] == "one"  # read relative to its working directory: the code


@pytest.mark.parametrize("freezer", FREEZERS)
def test_a_spare_nobody_takes_is_stopped_with_its_cgroups(freezer):
    from emulator.harness import spares

    require(freezer_problem(freezer) is None, f"freezer {freezer}: {freezer_problem(freezer)}")
    _, spare = _spare(freezer)
    dirs = cgroup_dirs(spare)
    spares.close()  # as at the end of the test session
    assert wait_gone(spare, 5.0)
    assert dirs and not any(d.exists() for d in dirs)


def test_a_spare_still_starting_is_left_for_the_next_test(tmp_path):
    """A test does not wait for the next test's emulator to finish starting (back-to-back tests that invoke nothing
    would each wait for it): it starts its own, and the spare stays for the test after."""
    import threading

    from emulator.harness import LambdaFreeze, spares

    spares.close()
    may_start = threading.Event()
    spares.start("auto", None, once=may_start.wait)  # held back, as one still starting
    first = LambdaFreeze(spare=True)
    try:
        fn = first.function(FUNCTIONS / "python/basic")
        assert not spares._started[("auto", None)].done()  # still there, untouched
        may_start.set()
        following, _ = spares._started[("auto", None)].result(30)
        assert fn.url != following.url  # this test started its own
    finally:
        first.close()
    second = LambdaFreeze(spare=True)
    try:
        assert second.function(FUNCTIONS / "python/basic").url == following.url  # the next test takes it
    finally:
        second.close()

"""What every freezer must do beyond the runtime itself: stop the extensions too, kill a whole group on kernels
without cgroup.kill, remove a cgroup only once its members are gone (retrying while rmdir says EBUSY), destroy the
frozen cgroups of an emulator that died (at the next one's start, or by its watchdog when its terminal hangs up),
find its cgroups under its own when that is nested or bind-mounted (a container), take the first freezer the host
allows under `auto`, and close every file an environment opened."""

from __future__ import annotations

import asyncio
import logging
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from test_cli import wait_gone
from test_freezing import _cgroup_dir

from conftest import FREEZERS, freezer_problem, require
from emulator.engine.freezer import BACKENDS, Cgroup2Group, destroy_instance, rmdir_when_empty

pytestmark = pytest.mark.timeout(90)


@pytest.mark.parametrize("freezer", ["cgroup2", "cgroup1"])
def test_rmdir_waits_for_the_members_to_leave_and_gives_up_in_the_end(freezer):
    problem = freezer_problem(freezer)
    require(problem is None, f"freezer {freezer}: {problem}")
    backend = BACKENDS[freezer]()
    members = []
    try:
        busy, stuck = backend.group("busy"), backend.group("stuck")
        for group in (busy, stuck):
            member = subprocess.Popen([sys.executable, "-c", "import signal; signal.pause()"])
            members.append(member)
            group.attach_paths[0].write_text(str(member.pid))
            group.attached(member.pid)
        retries = []

        def kill_at_the_third_retry() -> None:
            retries.append(time.monotonic())
            if len(retries) == 3:
                members[0].kill()

        assert asyncio.run(rmdir_when_empty(busy.path, before_retry=kill_at_the_third_retry))
        assert len(retries) >= 3 and not busy.path.exists()
        assert not asyncio.run(rmdir_when_empty(stuck.path, attempts=3))  # still busy: left in place
        assert stuck.path.exists()
        stuck.kill()
        asyncio.run(stuck.remove())
        assert not stuck.path.exists()
    finally:
        for member in members:
            member.kill()
            member.wait()
        backend.close()


def _frozen(path: Path, freezer: str) -> bool:
    if freezer == "cgroup2":
        return "frozen 1" in (path / "cgroup.events").read_text()
    return (path / "freezer.state").read_text().strip() == "FROZEN"


def _freeze_member(env_dir: Path, freezer: str) -> subprocess.Popen[bytes]:
    """A process put into ``env_dir`` (made here, as an emulator makes an environment's) and frozen there."""
    env_dir.mkdir(parents=True)
    member = subprocess.Popen([sys.executable, "-c", "import signal; signal.pause()"])
    (env_dir / "cgroup.procs").write_text(str(member.pid))
    (env_dir / ("cgroup.freeze" if freezer == "cgroup2" else "freezer.state")).write_text(
        "1" if freezer == "cgroup2" else "FROZEN"
    )
    _await_frozen(env_dir, freezer)
    return member


def _await_frozen(env_dir: Path, freezer: str) -> None:
    deadline = time.monotonic() + 10
    while not _frozen(env_dir, freezer):  # the kernel freezes asynchronously: await its word
        assert time.monotonic() < deadline, f"{env_dir} did not freeze"
        time.sleep(0.01)  # wait-ok: polling the kernel's state, which has no event to await here


@pytest.mark.parametrize("freezer", ["cgroup2", "cgroup1"])
def test_an_emulator_that_starts_destroys_the_frozen_cgroups_of_one_that_died(freezer, tmp_path):
    problem = freezer_problem(freezer)
    require(problem is None, f"freezer {freezer}: {problem}")
    # The instance that dies: named after a process that exits once its cgroups are made (then its pid and start
    # time match nothing live).
    dead = subprocess.Popen([sys.executable, "-c", "import sys; sys.stdin.read()"], stdin=subprocess.PIPE)
    start_time = Path(f"/proc/{dead.pid}/stat").read_text().rsplit(")", 1)[1].split()[19]
    # Another one still running, started through a name with ") " in it: its process's name, in /proc/<pid>/stat
    # between parentheses, then has a ") " of its own.
    (tmp_path / "emulator) x").symlink_to(sys.executable)
    odd = subprocess.Popen([str(tmp_path / "emulator) x"), "-c", "import sys; sys.stdin.read()"], stdin=subprocess.PIPE)
    odd_start = Path(f"/proc/{odd.pid}/stat").read_text().rsplit(")", 1)[1].split()[19]
    running = BACKENDS[freezer]()  # an emulator still running, whose frozen environment must stay as it is
    members = []
    try:
        stale = running.root / f"i{dead.pid}.{start_time}.1"
        foreign = running.root / f"i-not-an-instance-{os.getpid()}"  # not named as an emulator names its own
        foreign.mkdir()
        odd_instance = running.root / f"i{odd.pid}.{odd_start}.1"
        odd_instance.mkdir()
        members.append(_freeze_member(stale / "env-a", freezer))
        members.append(_freeze_member(stale / "env-b", freezer))
        dead.communicate(b"")  # made while its instance lived: an emulator starting elsewhere left it alone
        alive = _freeze_member(running.instance / "env-live", freezer)
        members.append(alive)
        starting = BACKENDS[freezer]()
        try:
            assert not stale.exists()  # thawed, emptied and removed before the new emulator goes on
            for member in members[:2]:
                assert member.wait(timeout=10) == -9  # killed, frozen as it was
            assert alive.poll() is None and _frozen(running.instance / "env-live", freezer)
            assert running.instance.exists()
            assert foreign.exists()  # not ours to remove
            assert odd_instance.exists()  # alive, whatever its name
        finally:
            starting.close()
    finally:
        for process in (dead, odd):
            process.kill()
            process.wait()
            assert process.stdin is not None
            process.stdin.close()
        live = running.instance / "env-live"
        if live.exists():  # thawed first: a v1-frozen process acts on SIGKILL only once thawed
            (live / ("cgroup.freeze" if freezer == "cgroup2" else "freezer.state")).write_text(
                "0" if freezer == "cgroup2" else "THAWED"
            )
        for member in members:
            member.kill()
            member.wait()
        asyncio.run(rmdir_when_empty(live))
        asyncio.run(rmdir_when_empty(running.root / f"i-not-an-instance-{os.getpid()}"))
        asyncio.run(rmdir_when_empty(running.root / f"i{odd.pid}.{odd_start}.1"))
        running.close()


# An emulator's start: a freezer backend, whose root it prints, then closes.
PRINT_ROOT = """
import sys
from emulator.engine.freezer import BACKENDS
backend = BACKENDS[sys.argv[1]]()
print(backend.root, flush=True)
backend.close()
"""
# The same, in the cgroup given, which it moves itself into first.
IN_CGROUP = """
import os, sys
from pathlib import Path
(Path(sys.argv[2]) / "cgroup.procs").write_text(str(os.getpid()))
""" + PRINT_ROOT


@pytest.mark.parametrize("freezer", ["cgroup2", "cgroup1"])
def test_an_emulator_in_a_nested_cgroup_makes_its_cgroups_under_its_own_and_removes_them(freezer):
    # As in a container or a systemd service: the emulator's own cgroup is not the hierarchy's root.
    problem = freezer_problem(freezer)
    require(problem is None, f"freezer {freezer}: {problem}")
    outer = BACKENDS[freezer]()
    nested = outer.hierarchy / f"nested:{os.getpid()}-{freezer}"  # a colon, as some service managers name units
    nested.mkdir()
    try:
        done = subprocess.run(
            [sys.executable, "-c", IN_CGROUP, freezer, str(nested)],
            cwd=Path(__file__).parents[1], capture_output=True, text=True, timeout=60,
        )
        assert done.returncode == 0, done.stderr
        assert done.stdout.strip() == str(nested / "lambda-freeze")
        assert not (nested / "lambda-freeze").exists()  # the only instance there: it removed the whole of it
    finally:
        for leftover in (nested / "lambda-freeze", nested):  # its one member has exited
            if leftover.exists():
                leftover.rmdir()
        outer.close()


# A container without a cgroup namespace: its own cgroup (moved into first) is bind-mounted where the hierarchy was,
# so the mount's root is that cgroup's path, not /. The emulator then starts a backend and prints its root.
IN_CONTAINER = """
set -e
echo $$ > "$NESTED/cgroup.procs"
mount --bind "$NESTED" "$SCRATCH"
umount -l "$MOUNT"
mount --move "$SCRATCH" "$MOUNT"
exec "$PYTHON" -c "$PRINT_ROOT" "$FREEZER"
"""


def _mount_point(freezer: str) -> str:
    for line in Path("/proc/self/mountinfo").read_text().splitlines():
        left, _, right = line.partition(" - ")
        fstype, _source, options = right.split()[:3]
        if fstype == freezer or (freezer == "cgroup1" and fstype == "cgroup" and "freezer" in options.split(",")):
            return left.split()[4]
    raise AssertionError(f"no {freezer} mount")


@pytest.mark.parametrize("freezer", ["cgroup2", "cgroup1"])
def test_an_emulator_in_a_container_without_a_cgroup_namespace_finds_its_hierarchy(freezer, tmp_path):
    problem = freezer_problem(freezer)
    require(problem is None, f"freezer {freezer}: {problem}")
    require(shutil.which("unshare") is not None, "unshare (util-linux), for a mount namespace of its own")
    outer = BACKENDS[freezer]()
    nested = outer.hierarchy / f"container-{os.getpid()}-{freezer}"
    nested.mkdir()
    scratch = tmp_path / "mount"
    scratch.mkdir()
    try:
        done = subprocess.run(
            ["unshare", "--mount", "--propagation", "private", "sh", "-c", IN_CONTAINER],
            cwd=Path(__file__).parents[1], capture_output=True, text=True, timeout=60,
            env={**os.environ, "NESTED": str(nested), "SCRATCH": str(scratch), "MOUNT": _mount_point(freezer),
                 "PYTHON": sys.executable, "PRINT_ROOT": PRINT_ROOT, "FREEZER": freezer},
        )
        assert done.returncode == 0, done.stderr
        assert done.stdout.strip() == f"{_mount_point(freezer)}/lambda-freeze"  # the container's whole hierarchy
        assert not (nested / "lambda-freeze").exists()
    finally:
        for leftover in (nested / "lambda-freeze", nested):
            if leftover.exists():
                leftover.rmdir()
        outer.close()


# The freezer `auto` chooses, in a mount namespace of its own where the shell commands given change the cgroup mounts
# first: it prints the backend's name, and its log says why the ones before it could not work.
AUTO = """
import logging, sys
logging.basicConfig(level=logging.INFO, format="%(message)s")
from emulator.engine.freezer import create_freezer
backend = create_freezer("auto")
print(backend.name, flush=True)
backend.close()
"""

HOSTS = {
    # a host with cgroup v1 alone (older distributions, some CI runners)
    "v1 only": ('umount -l "$V2"', "cgroup1", ["cgroup2: no cgroup v2 hierarchy is mounted"]),
    # a container that sees no cgroup file system at all
    "no cgroups": (
        'umount -l "$V2"; umount -l "$V1"',
        "sigstop",
        ["cgroup2: no cgroup v2 hierarchy is mounted", "cgroup1: no cgroup v1 freezer hierarchy is mounted"],
    ),
    # a container given the cgroup v2 file system read-only
    "v2 read-only": ('mount -o remount,bind,ro "$V2"', "cgroup1", ["cgroup2: cannot create cgroups under"]),
}


@pytest.mark.parametrize("host", list(HOSTS))
def test_auto_takes_the_first_freezer_the_host_allows(host):
    for freezer in ("cgroup2", "cgroup1"):
        problem = freezer_problem(freezer)
        require(problem is None, f"freezer {freezer}: {problem}")
    require(shutil.which("unshare") is not None, "unshare (util-linux), for a mount namespace of its own")
    change, chosen, reasons = HOSTS[host]
    done = subprocess.run(
        ["unshare", "--mount", "--propagation", "private", "sh", "-c", f'set -e; {change}; exec "$PYTHON" -c "$AUTO"'],
        cwd=Path(__file__).parents[1], capture_output=True, text=True, timeout=60,
        env={**os.environ, "V1": _mount_point("cgroup1"), "V2": _mount_point("cgroup2"), "PYTHON": sys.executable,
             "AUTO": AUTO},
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == chosen
    said = next(line for line in done.stderr.splitlines() if line.startswith("freezer: "))
    assert said.startswith(f"freezer: {chosen} (auto); ")
    for reason in reasons:
        assert reason in said


# How the scripts below freeze one environment in an emulator's freezer, as an environment's start and freeze do.
FREEZE_ONE = """
import signal, subprocess, sys
from emulator.engine.freezer import BACKENDS


def freeze_one(backend):
    group = backend.group("env")
    member = subprocess.Popen([sys.executable, "-c", "import signal; signal.pause()"], start_new_session=True)
    group.attach_paths[0].write_text(str(member.pid))
    group.attached(member.pid)
    group.freeze()
    return member.pid
"""
# An emulator's freezer with one environment frozen: it prints the environment's process, its instance's directory
# and its watchdog, then waits to be signalled.
HOLDING = FREEZE_ONE + """
backend = BACKENDS[sys.argv[1]]()
print(freeze_one(backend), backend.instance, backend._watchdog.pid, flush=True)
signal.pause()
"""


@pytest.mark.parametrize("freezer", ["cgroup2", "cgroup1"])
def test_a_hang_up_of_the_emulators_terminal_leaves_no_frozen_environment(freezer):
    # SIGHUP reaches the whole process group of the terminal's session: the emulator dies of it; its watchdog, in a
    # session of its own, must live on to kill the frozen environment, which nothing else can end.
    problem = freezer_problem(freezer)
    require(problem is None, f"freezer {freezer}: {problem}")
    emulator = subprocess.Popen(
        [sys.executable, "-c", HOLDING, freezer], cwd=Path(__file__).parents[1], stdout=subprocess.PIPE, text=True,
        start_new_session=True,
    )
    assert emulator.stdout is not None
    member_s, instance_s, watchdog_s = emulator.stdout.readline().split()
    member, instance, watchdog = int(member_s), Path(instance_s), int(watchdog_s)
    try:
        _await_frozen(instance / "env", freezer)
        os.killpg(emulator.pid, signal.SIGHUP)
        assert emulator.wait(timeout=10) == -signal.SIGHUP
        assert wait_gone(watchdog, 10.0), "the watchdog did not finish"
        assert wait_gone(member, 1.0), "the frozen environment outlived its emulator"
        assert not instance.exists()
    finally:
        emulator.kill()
        emulator.wait()
        emulator.stdout.close()
        if instance.exists():
            destroy_instance(instance, freezer == "cgroup1")


# Through an emulator: slower, so after the freezer's own tests (the mutation run stops at the first failure).
def ticks(path: Path) -> int:
    return int(path.read_text())


@pytest.mark.parametrize("freezer", FREEZERS)
def test_an_extension_is_stopped_with_the_runtime(serve, tmp_path, freezer):
    counter = tmp_path / "ticks"
    fn = serve("python/ticking_extension", freezer=freezer, env={"TICK_FILE": str(counter)})
    assert fn.invoke({}).payload == "ok"
    (env,) = fn.environments()
    assert fn.wait_kernel_frozen(env["id"])
    frozen_at = ticks(counter)
    time.sleep(0.5)  # wait-ok: the time the environment stays frozen is the scenario
    # A tick may land while the stop reaches the extension's thread; a running extension counts ~50 in 0.5 s.
    assert ticks(counter) - frozen_at <= 1
    assert fn.invoke({}).payload == "ok"  # thawed with the runtime: the environment still answers


def cgroup2_path(pid: int) -> Path:
    """The cgroup v2 directory of a process, from /proc/<pid>/cgroup and the cgroup2 mount."""
    relative = next(
        line.split(":", 2)[2] for line in Path(f"/proc/{pid}/cgroup").read_text().splitlines() if line.startswith("0::")
    )
    mount = next(
        line.split()[4] for line in Path("/proc/self/mountinfo").read_text().splitlines() if " - cgroup2 " in line
    )
    return Path(mount + relative)


def gone(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return True
    return stat.rsplit(") ", 1)[1].startswith("Z")  # exited, not yet reaped by its parent


def test_without_cgroup_kill_a_frozen_group_is_killed_process_by_process(serve, monkeypatch):
    # Kernels before 5.14 have no cgroup.kill: each member gets SIGKILL instead, the runtime and its children.
    monkeypatch.setattr(Cgroup2Group, "KILL_FILE", "cgroup.kill-absent-before-5.14")
    fn = serve("python/memory", freezer="cgroup2", idle_timeout_s=0.5)
    fn.invoke({"action": "small"})
    (env,) = fn.environments()
    runtime = env["pid"]
    group = cgroup2_path(runtime)
    assert group.name == env["id"]
    child = fn.invoke({"action": "child", "megabytes": 1}).payload
    assert fn.wait_kernel_frozen(env["id"])
    fn.wait_envs(lambda envs: envs == [])  # retired frozen, at its idle timeout
    assert gone(runtime) and gone(child)
    assert not group.exists()


@pytest.mark.parametrize("freezer", ["cgroup2", "cgroup1"])
def test_a_retired_environment_removes_its_cgroup_without_a_warning(serve, freezer, caplog):
    fn = serve("python/basic", freezer=freezer, idle_timeout_s=0.3)
    with caplog.at_level(logging.WARNING, logger="lambda_freeze"):
        fn.invoke({"action": "echo"})
        (env,) = fn.environments()
        cgroup = _cgroup_dir(env["pid"], freezer)
        assert cgroup.name == env["id"]
        fn.wait_envs(lambda envs: envs == [])  # retired frozen, at its idle timeout
        assert gone(env["pid"]) and not cgroup.exists()
    warned = [r for r in caplog.records if r.name.startswith("lambda_freeze") and r.levelno >= logging.WARNING]
    assert [r.getMessage() for r in warned] == []  # (info lines, such as the freezer's name at start, are no warning)


def open_files() -> list[str]:
    """What this process (the emulator runs in it) has open."""
    found = []
    for fd in os.listdir("/proc/self/fd"):
        try:
            found.append(os.readlink(f"/proc/self/fd/{fd}"))
        except OSError:
            continue  # the descriptor that listed the directory, closed since
    return found


@pytest.mark.parametrize("freezer", FREEZERS)
def test_a_retired_environment_leaves_no_file_open(serve, freezer):
    # Each environment keeps its runtime's status (for Max Memory Used) and its cgroup's control files open while it
    # lives; environments come and go by the thousand in a long session, so each must close what it opened.
    fn = serve("python/basic", freezer=freezer, idle_timeout_s=0.3)
    fn.invoke({"action": "echo"})
    (env,) = fn.environments()
    runtime, cgroup = f"/proc/{env['pid']}/", f"/{env['id']}/"

    def held() -> list[str]:
        return [f for f in open_files() if f.startswith(runtime) or (f.startswith("/sys/fs/cgroup/") and cgroup in f)]

    assert any(f.startswith(runtime) for f in held())  # measured while it lives
    fn.wait_envs(lambda envs: envs == [])
    assert held() == []


def test_an_instance_is_made_while_other_emulators_remove_the_shared_root(tmp_path):
    """Every emulator removes the shared root directory as it closes if it is empty; another one starting meanwhile
    (the pytest plugin's next test's emulator starts as the last one closes) must still make its instance, not find
    the root gone between creating it and creating its own directory in it and give up on its freezer or memory
    limit. A process removing the root in a loop, on the other core, races each of 500 starts."""
    from emulator.engine.freezer import make_instance

    root = tmp_path / "lambda-freeze"
    remover = subprocess.Popen(["/bin/sh", "-c", f'while :; do rmdir "{root}" 2>/dev/null; done'])
    try:
        for n in range(500):
            instance = root / f"i{n}"
            make_instance(root, instance)
            assert instance.is_dir()
            instance.rmdir()
    finally:
        remover.kill()
        remover.wait()


# Two emulators' freezers in one process, one environment frozen in each, and a third emulator that starts and closes
# meanwhile: it prints both environments' processes, both instances' directories, both freezers' watchdogs and the
# third's, then waits to be killed.
HOLDING_TWO = FREEZE_ONE + """
printed = []
backends = [BACKENDS[sys.argv[1]]() for _ in range(2)]
passing = BACKENDS[sys.argv[1]]()
passing.close()
for backend in backends:
    printed += [freeze_one(backend), backend.instance, backend._watchdog.pid]
print(*printed, passing._watchdog.pid, passing.instance, flush=True)
signal.pause()
"""


@pytest.mark.parametrize("freezer", ["cgroup2", "cgroup1"])
def test_one_watchdog_serves_every_emulator_of_a_process_and_destroys_all_they_left(freezer):
    # The pytest plugin starts an emulator per test: each starting an interpreter of its own for its watchdog cost
    # about 7 ms of CPU per test. One serves them all, each instance named to it as it is made.
    problem = freezer_problem(freezer)
    require(problem is None, f"freezer {freezer}: {problem}")
    emulator = subprocess.Popen(
        [sys.executable, "-c", HOLDING_TWO, freezer], cwd=Path(__file__).parents[1], stdout=subprocess.PIPE,
        text=True, start_new_session=True,
    )
    assert emulator.stdout is not None
    said = emulator.stdout.readline().split()
    members, instances = [int(said[0]), int(said[3])], [Path(said[1]), Path(said[4])]
    watchdogs = {int(said[2]), int(said[5]), int(said[6])}
    try:
        assert len(watchdogs) == 1  # one process for the three emulators
        assert not Path(said[7]).exists()  # the one that closed removed its own directory
        for instance in instances:
            _await_frozen(instance / "env", freezer)
        emulator.kill()
        assert emulator.wait(timeout=10) == -signal.SIGKILL
        assert wait_gone(watchdogs.pop(), 10.0), "the watchdog did not finish"
        for member in members:
            assert wait_gone(member, 1.0), "a frozen environment outlived its emulator"
        assert not any(instance.exists() for instance in instances)
    finally:
        emulator.kill()
        emulator.wait()
        emulator.stdout.close()
        for instance in instances:
            if instance.exists():
                destroy_instance(instance, freezer == "cgroup1")


@pytest.mark.parametrize("freezer", ["cgroup2", "cgroup1"])
def test_an_emulator_closing_with_a_frozen_leftover_destroys_it_and_the_watchdog_serves_on(freezer):
    problem = freezer_problem(freezer)
    require(problem is None, f"freezer {freezer}: {problem}")
    other = BACKENDS[freezer]()  # another emulator of this process, still running
    closing = BACKENDS[freezer]()
    try:
        assert closing._watchdog is other._watchdog
        member = _freeze_member(closing.instance / "env", freezer)  # not stopped by an environment: left over
        closing.close()
        assert member.wait(timeout=10) == -signal.SIGKILL  # killed, frozen as it was
        assert not closing.instance.exists()
        assert other._watchdog.poll() is None  # still there for the emulator that runs on
    finally:
        other.close()

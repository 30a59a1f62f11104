"""The ``lambda-freeze`` command: serve, invoke, and nothing left behind however the emulator is stopped."""

from __future__ import annotations

import json
import os
import select
import signal
import subprocess
import sys
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from conftest import FREEZERS, FUNCTIONS, STARTED, freezer_problem, lambda_client, require
from emulator.cli import _timeline
from emulator.engine.timeline import MAX_EVENTS, RECENT_EVENTS

pytestmark = pytest.mark.timeout(60)


def command() -> list[str]:
    script = Path(sys.executable).parent / "lambda-freeze"
    return [str(script)] if script.exists() else [sys.executable, "-m", "emulator.cli"]


class Serve:
    """``lambda-freeze serve`` as a user starts it; ``url`` once it says it is serving."""

    def __init__(self, *args: str, prefix: Sequence[str] = (), verbose: bool = False):
        # prefix: a command that runs it (setpriv ...); verbose: -v, its log at debug level
        self.proc = subprocess.Popen(
            [*prefix, *command(), *(["-v"] if verbose else []), "serve", "--port", "0", *args],
            stdout=subprocess.DEVNULL,  # function logs
            stderr=subprocess.PIPE,
            text=True,
        )
        STARTED.append(self.proc)
        self.stderr: list[str] = []
        for line in self.proc.stderr:  # type: ignore[union-attr]
            self.stderr.append(line)
            if "serving" in line:
                self.url = line.split(" on ")[1].split()[0]
                break
        else:
            raise AssertionError(f"serve exited early: {''.join(self.stderr)}")

    def stop(self, sig: int) -> int:
        self.proc.send_signal(sig)
        _, rest = self.proc.communicate(timeout=20)
        self.stderr.append(rest)
        return self.proc.returncode


def wait_gone(pid: int, timeout_s: float) -> bool:
    """Await a process's end through a pidfd (no polling); True when it is gone."""
    try:
        fd = os.pidfd_open(pid)
    except ProcessLookupError:
        return True
    try:
        readable, _, _ = select.select([fd], [], [], timeout_s)
        return bool(readable)
    finally:
        os.close(fd)


def cgroup_dirs(pid: int) -> list[Path]:
    """The lambda-freeze cgroup directories that ``pid`` is in (freezer and memory)."""
    dirs = []
    for line in Path(f"/proc/{pid}/cgroup").read_text().splitlines():
        path = line.split(":", 2)[2]
        if "lambda-freeze" not in path:
            continue
        for mount in Path("/sys/fs/cgroup").iterdir():
            candidate = mount / path.lstrip("/")
            if (candidate / "cgroup.procs").exists() and str(pid) in (candidate / "cgroup.procs").read_text().split():
                dirs.append(candidate)
    return dirs


def watchdog_pids() -> dict[int, str]:
    found = {}
    for proc in Path("/proc").iterdir():
        if proc.name.isdigit():
            try:
                cmdline = (proc / "cmdline").read_bytes().split(b"\0")
            except OSError:
                continue
            if b"emulator.watchdog" in cmdline:
                found[int(proc.name)] = cmdline[cmdline.index(b"emulator.watchdog") + 1].decode()
    return found


@pytest.mark.parametrize("freezer", FREEZERS)
@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM, signal.SIGKILL], ids=["SIGINT", "SIGTERM", "SIGKILL"])
def test_nothing_left_after_serve_stops(freezer, sig):
    require(freezer_problem(freezer) is None, f"freezer {freezer}: {freezer_problem(freezer)}")
    serve = Serve("--code-dir", str(FUNCTIONS / "python/basic"), "--handler", "app.handler", "--freezer", freezer)
    client = lambda_client(serve.url)
    with ThreadPoolExecutor(2) as pool:  # two at once: two environments
        list(
            pool.map(
                lambda _: client.invoke(
                    FunctionName="function", Payload=b'{"action": "sleep", "seconds": 0.3}', LogType="Tail"
                ),
                range(2),
            )
        )
    envs = json.loads(
        subprocess.run(
            ["curl", "-sS", f"{serve.url}/_lambda-freeze/environments"], capture_output=True, check=True
        ).stdout
    )
    assert len(envs) == 2 and all(env["state"] == "frozen" for env in envs)
    pids = [env["pid"] for env in envs]
    # every hierarchy's directories of this emulator: the freezer's and the memory limit's, the environments' own
    # and the instance's around them
    cgroups = {d for pid in pids for group in cgroup_dirs(pid) for d in (group, group.parent)}
    if freezer != "sigstop":
        assert cgroups, "the runtimes are in no cgroup of their own"
    own = f"/i{serve.proc.pid}."
    watchdogs = {pid: d for pid, d in watchdog_pids().items() if own in d}
    assert len(watchdogs) == (1 if cgroups else 0)  # one, which destroys every hierarchy's directories
    status = serve.stop(sig)
    if sig != signal.SIGKILL:
        assert status == 0
        assert "stopping" in "".join(serve.stderr)
    for pid in pids:
        assert wait_gone(pid, 2.0), f"runtime {pid} outlived the emulator ({freezer}, {sig.name})"
    for pid in watchdogs:
        assert wait_gone(pid, 5.0), "the watchdog did not finish"
    left = sorted(str(d) for d in cgroups if d.exists())
    assert left == [], f"cgroups left behind ({freezer}, {sig.name})"


def test_invoke_command(tmp_path):
    serve = Serve("--code-dir", str(FUNCTIONS / "python/basic"), "--handler", "app.handler", "--name", "hello")
    try:
        done = subprocess.run(
            [
                *command(),
                "invoke",
                "hello",
                "--payload",
                '{"action": "echo", "k": 1}',
                "--endpoint",
                serve.url,
                "--log-tail",
            ],
            capture_output=True,
            text=True,
            timeout=30,
        )
        assert done.returncode == 0, done.stderr
        assert json.loads(done.stdout) == {"action": "echo", "k": 1}
        assert "REPORT RequestId:" in done.stderr
        failed = subprocess.run(
            [*command(), "invoke", "hello", "--payload", '{"action": "raise"}', "--endpoint", serve.url],
            capture_output=True,
            text=True,
            timeout=30,
        )
        assert failed.returncode == 1
        assert json.loads(failed.stdout)["errorType"] == "ValueError"
        missing = subprocess.run(
            [*command(), "invoke", "nope", "--endpoint", serve.url], capture_output=True, text=True
        )
        assert missing.returncode == 1 and "ResourceNotFoundException" in missing.stderr
    finally:
        serve.stop(signal.SIGTERM)


def test_serve_with_a_config_file(tmp_path):
    config = tmp_path / "lambda-freeze.toml"
    config.write_text(
        f"""
[server]
freezer = "auto"

[functions.one]
code_dir = "{FUNCTIONS / "python/basic"}"
handler = "app.handler"
memory = 256
env = {{ WHICH = "one" }}

[functions.two]
code_dir = "{FUNCTIONS / "provided/python"}"
runtime = "provided"
handler = "two.handler"
"""
    )
    serve = Serve("--config", str(config))
    try:
        client = lambda_client(serve.url)
        one = json.loads(client.invoke(FunctionName="one", Payload=b'{"action": "env"}')["Payload"].read())
        assert one["WHICH"] == "one" and one["AWS_LAMBDA_FUNCTION_MEMORY_SIZE"] == "256"
        two = json.loads(client.invoke(FunctionName="two", Payload=b'{"n": 2}')["Payload"].read())
        assert two["event"] == {"n": 2}
    finally:
        serve.stop(signal.SIGINT)


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("[functions.x]\nhandler = 'a.b'\n", "'code_dir' is required"),
        ("[functions.x]\ncode_dir = '.'\nhandler = 'a.b'\ntimeot = 3\n", "unknown key(s) timeot"),
        ("[sever]\n", "unknown table(s) sever"),
        ("[functions.x]\ncode_dir = '.'\nhandler = 'a.b'\nenv = { AWS_REGION = 'x' }\n", "reserved by Lambda"),
        ("[functions.x\n", "Expected"),
    ],
)
def test_bad_config_files_are_named(tmp_path, content, message):
    config = tmp_path / "bad.toml"
    config.write_text(content)
    done = subprocess.run([*command(), "serve", "--config", str(config)], capture_output=True, text=True, timeout=30)
    assert done.returncode == 2
    assert message in done.stderr


def test_port_in_use_is_a_clear_error():
    serve = Serve("--code-dir", str(FUNCTIONS / "python/basic"), "--handler", "app.handler")
    try:
        port = serve.url.rsplit(":", 1)[1]
        done = subprocess.run(
            [
                *command(),
                "serve",
                "--code-dir",
                str(FUNCTIONS / "python/basic"),
                "--handler",
                "app.handler",
                "--port",
                port,
            ],
            capture_output=True,
            text=True,
            timeout=30,
        )
        assert done.returncode == 2
        assert f"cannot listen on 127.0.0.1:{port}" in done.stderr
    finally:
        serve.stop(signal.SIGTERM)


def test_serve_keeps_the_whole_timeline_only_when_it_writes_a_trace(tmp_path):
    # Without --trace nothing reads the history: a long `serve` keeps recent events only and its memory stays flat.
    assert _timeline(None).events.maxlen == RECENT_EVENTS < MAX_EVENTS
    assert _timeline(tmp_path / "trace.json").events.maxlen == MAX_EVENTS

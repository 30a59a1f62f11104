"""Code that opens Lambda's paths directly: its own files at /var/task and its layers' at /opt, by default, where the
kernel gives the runtime a private mount namespace (root here); elsewhere, or with --no-lambda-paths, the real
directories under the same variables. Each test says which path the kernel allowed."""

from __future__ import annotations

import json
import logging
import os
import shutil
import signal
from pathlib import Path

import pytest
from test_cli import Serve

from conftest import lambda_client, require
from emulator import FunctionConfig, ServerConfig
from emulator.engine import lambda_paths, preparation
from emulator.engine.lambda_paths import Mounts

pytestmark = pytest.mark.timeout(60)

APP = """\
import os
import sys


def read(path):
    try:
        with open(path) as f:
            return f.read()
    except OSError as exc:
        return type(exc).__name__


def handler(event, context):
    return {
        "task_file": read("/var/task/data.txt"),
        "opt_shared": read("/opt/data/shared.txt"),
        "opt_first": read("/opt/data/first.txt"),
        "opt_listing": sorted(os.listdir("/opt")),
        "by_variable": read(os.path.join(os.environ["LAMBDA_TASK_ROOT"], "data.txt")),
        "cwd": os.getcwd(),
        "root": os.environ["LAMBDA_TASK_ROOT"],
        "sys_path": sys.path,
    }
"""


@pytest.fixture
def project(tmp_path: Path) -> Path:
    (tmp_path / "code").mkdir()
    (tmp_path / "code/app.py").write_text(APP)
    (tmp_path / "code/data.txt").write_text("the code's own file")
    for layer, files in (("first", {"shared.txt": "first layer", "first.txt": "only in first"}),
                         ("second", {"shared.txt": "second layer"})):
        (tmp_path / layer / "data").mkdir(parents=True)
        (tmp_path / layer / "python").mkdir()
        for name, text in files.items():
            (tmp_path / layer / "data" / name).write_text(text)
    return tmp_path


def invoke(serve: Serve) -> dict[str, object]:
    response = lambda_client(serve.url).invoke(FunctionName="paths", Payload=b"{}")
    payload = json.loads(response["Payload"].read())
    assert "FunctionError" not in response, payload
    return payload


def test_code_and_layers_at_lambdas_paths(project):
    serve = Serve("--code-dir", str(project / "code"), "--handler", "app.handler", "--name", "paths",
                  "--layer", str(project / "first"), "--layer", str(project / "second"))
    try:
        seen = invoke(serve)
    finally:
        assert serve.stop(signal.SIGTERM) == 0
    said = "".join(serve.stderr)
    assert seen["by_variable"] == "the code's own file"
    if lambda_paths.available():  # the kernel allowed a private mount namespace: Lambda's paths
        assert seen["task_file"] == "the code's own file"
        assert seen["opt_shared"] == "second layer"  # the later layer's file wins, as Lambda extracts them
        assert seen["opt_first"] == "only in first"
        assert seen["opt_listing"] == ["data", "python"]  # the layers alone, not the host's /opt
        assert (seen["cwd"], seen["root"]) == ("/var/task", "/var/task")
        assert "/var/task" in seen["sys_path"] and "/opt/python" in seen["sys_path"]
        assert not any(str(project) in entry for entry in seen["sys_path"])  # no real path left to the code
        assert "functions see their code at /var/task and their layers at /opt" in said
    else:  # not permitted: the real directories, named by the variables, and one line that says why
        assert said.count("no private mount namespace here") == 1
        assert seen["task_file"] == "FileNotFoundError"
        assert seen["root"] == str((project / "code").resolve())
        assert str((project / "second/python").resolve()) in seen["sys_path"]


def test_without_layers_opt_is_empty(project):
    serve = Serve("--code-dir", str(project / "code"), "--handler", "app.handler", "--name", "paths")
    try:
        seen = invoke(serve)
    finally:
        assert serve.stop(signal.SIGTERM) == 0
    if lambda_paths.available():
        assert seen["opt_listing"] == []  # as on Lambda without layers: nothing of the host's /opt
        assert seen["task_file"] == "the code's own file"
    else:
        assert seen["root"] == str((project / "code").resolve())


def test_where_the_kernel_refuses_one_line_says_so_and_the_real_paths_serve(project):
    """An unprivileged container's lot, made here: root without CAP_SYS_ADMIN (setpriv drops it), so unshare(2) is
    refused. One log line says so, and the code and layers run from their own directories under the same variables."""
    require(os.geteuid() == 0 and shutil.which("setpriv") is not None, "needs root and setpriv(1) to drop a capability")
    serve = Serve("--code-dir", str(project / "code"), "--handler", "app.handler", "--name", "paths",
                  "--layer", str(project / "first"), "--freezer", "sigstop",
                  prefix=["setpriv", "--bounding-set=-sys_admin", "--inh-caps=-sys_admin"])
    try:
        seen = invoke(serve)
    finally:
        assert serve.stop(signal.SIGTERM) == 0
    said = "".join(serve.stderr)
    assert said.count("no private mount namespace here") == 1, said
    assert "Operation not permitted" in said
    assert "functions see their code at /var/task" not in said
    assert seen["task_file"] == seen["opt_first"] == "FileNotFoundError"
    assert seen["root"] == seen["cwd"] == str((project / "code").resolve())
    assert seen["by_variable"] == "the code's own file"
    assert str((project / "first/python").resolve()) in seen["sys_path"]


def test_opting_out_runs_the_real_directories(project):
    serve = Serve("--code-dir", str(project / "code"), "--handler", "app.handler", "--name", "paths",
                  "--layer", str(project / "first"), "--no-lambda-paths")
    try:
        seen = invoke(serve)
    finally:
        assert serve.stop(signal.SIGTERM) == 0
    assert seen["task_file"] == "FileNotFoundError"  # /var/task is the host's: an empty mount point, or none
    assert seen["root"] == seen["cwd"] == str((project / "code").resolve())
    assert seen["by_variable"] == "the code's own file"
    assert str((project / "first/python").resolve()) in seen["sys_path"]
    assert "layers are used from their own directories, not mounted at /opt" in "".join(serve.stderr)


def test_the_opt_out_is_a_config_key(tmp_path):
    config = tmp_path / "lambda-freeze.toml"
    config.write_text('[functions.f]\ncode_dir = "."\nhandler = "app.handler"\nlambda_paths = false\n')
    (loaded,) = ServerConfig.load(file=config).functions
    assert loaded.lambda_paths is False
    assert FunctionConfig("g", tmp_path, "app.handler").lambda_paths is True  # the default


def test_a_debugged_function_keeps_its_real_paths(tmp_path, caplog):
    debugged = FunctionConfig("f", tmp_path, "app.handler", debug_port=5678)
    assert not lambda_paths.wanted(debugged)  # breakpoints name the files the editor has open
    with caplog.at_level(logging.INFO, logger="lambda_freeze.prepare"):
        preparation.prepare(debugged)
    said = [r.getMessage() for r in caplog.records if "is debugged at its real paths" in r.getMessage()]
    assert len(said) == (1 if lambda_paths.available() else 0)  # where there is no namespace, nothing changes
    assert lambda_paths.wanted(FunctionConfig("f", tmp_path, "app.handler"))
    assert not lambda_paths.wanted(FunctionConfig("f", tmp_path, "app.handler", lambda_paths=False))


def test_what_the_runtime_needs_from_the_hosts_opt():
    """A runtime client or an interpreter kept under the host's /opt would vanish under the layers: the function
    then keeps its real paths (said once); the code and the layers themselves may live there."""
    mounts = Mounts(Path("/opt/app/code"), (Path("/opt/app/layer"),))
    env = {"PYTHONPATH": "/opt/app/code:/opt/app/layer/python:/cache/build",
           "NODE_PATH": "/opt/lambda-freeze/node-ric/node_modules:/opt/app/code"}
    assert mounts.hidden(["/usr/bin/node", "/opt/app/code/node_modules/x/index.mjs"], env) == [
        "/opt/lambda-freeze/node-ric/node_modules"]
    assert mounts.hidden(["/usr/bin/python3", "-m", "awslambdaric"], {"PYTHONPATH": "/cache:/opt/app/code"}) == []
    assert mounts.command(["/opt/app/code/bootstrap", "-v", "/usr/bin/x"]) == ["/var/task/bootstrap", "-v",
                                                                             "/usr/bin/x"]


def test_the_search_paths_name_lambdas_folders():
    mounts = Mounts(Path("/src/app"), (Path("/layers/a"), Path("/layers/b")))
    env = mounts.environment({
        "LAMBDA_TASK_ROOT": "/src/app",
        "PYTHONPATH": "/src/app:/cache/build:/layers/b/python/lib/python3.11/site-packages:"
                      "/layers/a/python/lib/python3.11/site-packages:/layers/b/python:/layers/a/python",
        "PATH": "/var/lang/bin:/layers/b/bin:/layers/a/bin:/opt/bin:/usr/bin",
        "LD_LIBRARY_PATH": "/src/app/lib:/layers/b/lib:/layers/a/lib:/opt/lib",
        "OTHER": "/src/app",
    })
    assert env == {
        "LAMBDA_TASK_ROOT": "/var/task",
        "PYTHONPATH": "/var/task:/cache/build:/opt/python/lib/python3.11/site-packages:/opt/python",
        "PATH": "/var/lang/bin:/opt/bin:/usr/bin",
        "LD_LIBRARY_PATH": "/var/task/lib:/opt/lib",
        "OTHER": "/src/app",  # a function's own variable is its own
    }


def _run_parked(parked, command: str) -> str:
    parked.release(["/bin/sh", "-c", command], {"PATH": "/usr/bin:/bin"})
    out = b""
    while chunk := os.read(parked.read_fd, 4096):
        out += chunk
    parked.popen.wait()
    os.close(parked.read_fd)
    return out.decode()


@pytest.mark.parametrize("how", ["park.c", "preexec_fn"])
def test_a_parked_process_has_lambdas_paths_made_either_way(project, monkeypatch, how):
    """The standby's park: by the compiled helper (a vfork, no Python in the child) or, where no compiler built it,
    by a preexec_fn; the same mounts both ways, one layer bound on /opt."""
    from emulator.engine import process

    require(lambda_paths.available(), "needs a private mount namespace (root, or CAP_SYS_ADMIN)")
    if how == "park.c":
        require(process._park_helper() is not None, "needs a C compiler for park.c")
    else:
        monkeypatch.setattr(process, "_park_helper", lambda: None)
    parked = process.park(project / "code", [], Mounts(project / "code", (project / "first",)))
    said = _run_parked(parked, "pwd; cat /var/task/data.txt; echo; ls /opt")
    assert said.split("\n") == ["/var/task", "the code's own file", "data", "python", ""]


def test_a_process_parked_without_mounts_enters_them_later(project, tmp_path):
    """A spare: parked before its function was known (no mounts, the working directory /), then given the function's
    view with two layers, as a keeper does when it takes it; the release runs in that view."""
    from emulator.engine import process

    require(lambda_paths.available(), "needs a private mount namespace (root, or CAP_SYS_ADMIN)")
    require(process._park_helper() is not None, "needs a C compiler for park.c")
    parked = process.park(Path("/"), [])
    host_namespace = os.readlink("/proc/self/ns/mnt")
    assert os.readlink(f"/proc/{parked.pid}/ns/mnt") == host_namespace
    parked.enter(Mounts(project / "code", (project / "first", project / "second")))
    assert os.readlink(f"/proc/{parked.pid}/ns/mnt") != host_namespace  # the same process, in its own namespace now
    said = _run_parked(parked, "pwd; cat /var/task/data.txt; echo; cat /opt/data/shared.txt; echo; ls /opt/data")
    assert said.split("\n") == ["/var/task", "the code's own file", "second layer", "first.txt", "shared.txt", ""]


def test_a_mount_a_spare_cannot_enter_is_an_error_and_leaves_nothing(project):
    from emulator.engine import process

    require(lambda_paths.available(), "needs a private mount namespace (root, or CAP_SYS_ADMIN)")
    require(process._park_helper() is not None, "needs a C compiler for park.c")
    parked = process.park(Path("/"), [])
    with pytest.raises(OSError, match="bind the layer on /opt"):
        parked.enter(Mounts(project / "code", (project / "no-such-layer",)))
    parked.discard()
    assert parked.popen.returncode is not None  # the process (park.c, which said why) ended and was reaped


def test_a_mount_the_parked_process_cannot_make_is_an_error_and_leaves_nothing(project):
    from emulator.engine import process
    from emulator.harness import spares

    require(lambda_paths.available(), "needs a private mount namespace (root, or CAP_SYS_ADMIN)")
    require(process._park_helper() is not None, "needs a C compiler for park.c")
    spares.close()  # the next test's emulator, started by an earlier test's teardown, makes children of its own
    children = [task / "children" for task in Path("/proc/self/task").iterdir()]
    before = {pid for path in children for pid in path.read_text().split()}
    with pytest.raises(OSError, match="bind the layer on /opt"):
        process.park(project / "code", [], Mounts(project / "code", (project / "no-such-layer",)))
    assert {pid for path in children if path.exists() for pid in path.read_text().split()} <= before  # reaped

"""Code that opens Lambda's paths directly: its own files at /var/task and its layers' at /opt, where the kernel gives
the runtime a private mount namespace (root here); elsewhere the real directories under the same variables. Each
test says which path the kernel allowed."""

from __future__ import annotations

import json
import signal
from pathlib import Path

import pytest
from test_cli import Serve

from conftest import lambda_client
from emulator.engine import lambda_paths
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
                  "--layer", str(project / "first"), "--layer", str(project / "second"), "--lambda-paths")
    try:
        seen = invoke(serve)
    finally:
        assert serve.stop(signal.SIGTERM) == 0
    assert seen["by_variable"] == "the code's own file"
    if lambda_paths.available():  # the kernel allowed a private mount namespace: Lambda's paths
        assert seen["task_file"] == "the code's own file"
        assert seen["opt_shared"] == "second layer"  # the later layer's file wins, as Lambda extracts them
        assert seen["opt_first"] == "only in first"
        assert seen["opt_listing"] == ["data", "python"]  # the layers alone, not the host's /opt
        assert (seen["cwd"], seen["root"]) == ("/var/task", "/var/task")
        assert "/var/task" in seen["sys_path"] and "/opt/python" in seen["sys_path"]
        assert not any(str(project) in entry for entry in seen["sys_path"])  # no real path left to the code
    else:  # not permitted: the real directories, named by the variables
        assert seen["task_file"] == "FileNotFoundError"
        assert seen["root"] == str((project / "code").resolve())
        assert str((project / "second/python").resolve()) in seen["sys_path"]


def test_without_layers_opt_is_empty(project):
    serve = Serve("--code-dir", str(project / "code"), "--handler", "app.handler", "--name", "paths", "--lambda-paths")
    try:
        seen = invoke(serve)
    finally:
        assert serve.stop(signal.SIGTERM) == 0
    if lambda_paths.available():
        assert seen["opt_listing"] == []  # as on Lambda without layers: nothing of the host's /opt
        assert seen["task_file"] == "the code's own file"
    else:
        assert seen["root"] == str((project / "code").resolve())


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

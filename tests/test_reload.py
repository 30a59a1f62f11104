"""Hot reload: a file edited between two invocations answers with the new code (Python and Node.js), the old
environment stopped; an invocation in flight finishes on the old code; a burst of files is one reload."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from conftest import lambda_client, require
from emulator import FunctionConfig, ServerConfig
from emulator.engine import node_ric
from emulator.errors import ConfigError
from emulator.reload import owners
from emulator.server import Emulator
from emulator.testing import CollectingSink, EmulatorThread

pytestmark = pytest.mark.timeout(90)

PYTHON_APP = """
import time

def handler(event, context):
    time.sleep(event.get("hold_s", 0))  # wait-ok: an invocation that is still running when the code changes
    return {{"version": {version}}}
"""

NODE_APP = """
exports.handler = async (event) => ({{ version: {version} }});
"""


class Reloading:
    def __init__(self, emu: EmulatorThread, name: str):
        self.emu = emu
        self.client = lambda_client(emu.url)
        self.name = name

    def invoke(self, event: dict[str, Any] | None = None) -> Any:
        response = self.client.invoke(FunctionName=self.name, Payload=json.dumps(event or {}).encode())
        assert "FunctionError" not in response, response["Payload"].read()
        return json.loads(response["Payload"].read())

    def env_ids(self) -> set[str]:
        return {env["id"] for env in self.emu.environments(self.name)}

    def watching(self) -> None:
        async def ready(emulator: Emulator) -> None:
            assert emulator.watcher is not None
            await emulator.watcher.ready.wait()

        self.emu.call(ready)

    def reloads(self, emulator: Emulator) -> list[Any]:
        return [event for event in emulator.timeline.events if event.kind == "reload"]


@pytest.fixture
def reloading() -> Iterator[Any]:
    started: list[EmulatorThread] = []

    def factory(code_dir: Path, handler: str, runtime: str = "python3.11", layers: tuple[Path, ...] = ()) -> Reloading:
        config = FunctionConfig(
            name="fn", code_dir=code_dir, handler=handler, runtime=runtime, timeout_s=30, layers=layers
        )
        emu = EmulatorThread(ServerConfig(port=0, functions=(config,)), sink=CollectingSink(), reload=True).start()
        started.append(emu)
        served = Reloading(emu, "fn")
        served.watching()
        return served

    yield factory
    for emu in started:
        emu.stop()


def test_python_edit_answers_with_new_code_and_stops_the_old_environment(tmp_path: Path, reloading: Any) -> None:
    (tmp_path / "app.py").write_text(PYTHON_APP.format(version=1))
    fn = reloading(tmp_path, "app.handler")
    assert fn.invoke() == {"version": 1}
    old = fn.env_ids()
    fn.emu.wait_for(lambda emu: _states(emu) == ["frozen"])

    (tmp_path / "app.py").write_text(PYTHON_APP.format(version=2))
    fn.emu.wait_for(lambda emu: not set(emu.functions["fn"].environments) & old)  # the old one stopped

    assert fn.invoke() == {"version": 2}
    assert not fn.env_ids() & old
    [reload] = fn.emu.call(_async(fn.reloads))
    assert reload.subject == "fn" and reload.detail["files"] == ["app.py"]
    assert reload.detail["retired"] == 1  # the one environment there was


def test_a_layer_edit_answers_with_the_new_layer(tmp_path: Path, reloading: Any) -> None:
    code, layer = tmp_path / "code", tmp_path / "layer"
    (layer / "python").mkdir(parents=True)
    code.mkdir()
    (layer / "python" / "greetlib.py").write_text("VERSION = 1\n")
    (code / "app.py").write_text(
        "import greetlib\n\ndef handler(event, context):\n    return {'version': greetlib.VERSION}\n"
    )
    fn = reloading(code, "app.handler", layers=(layer,))
    assert fn.invoke() == {"version": 1}
    old = fn.env_ids()

    (layer / "python" / "greetlib.py").write_text("VERSION = 2\n")
    fn.emu.wait_for(lambda emu: not set(emu.functions["fn"].environments) & old)

    assert fn.invoke() == {"version": 2}
    [reload] = fn.emu.call(_async(fn.reloads))
    assert reload.subject == "fn" and reload.detail["files"] == ["python/greetlib.py"]


def test_invocation_in_flight_finishes_then_the_next_runs_new_code(tmp_path: Path, reloading: Any) -> None:
    (tmp_path / "app.py").write_text(PYTHON_APP.format(version=1))
    fn = reloading(tmp_path, "app.handler")
    results: list[Any] = []
    caller = threading.Thread(target=lambda: results.append(fn.invoke({"hold_s": 2})))
    caller.start()
    fn.emu.wait_for(lambda emu: _states(emu) == ["invoking"])
    busy = fn.env_ids()

    (tmp_path / "app.py").write_text(PYTHON_APP.format(version=2))
    fn.emu.wait_for(lambda emu: bool(fn.reloads(emu)))
    caller.join(30)
    assert results == [{"version": 1}]  # not cut short, and on the code it started with
    fn.emu.wait_for(lambda emu: not set(emu.functions["fn"].environments) & busy)  # retired once it ended
    assert fn.invoke() == {"version": 2}


def test_a_second_change_retires_the_environments_the_first_did_not(tmp_path: Path, reloading: Any) -> None:
    # The first change finds one environment busy (it retires when its invocation ends); an invocation after it
    # starts a second one on the new code. The second change skips the first environment (already told) and
    # retires the second.
    (tmp_path / "app.py").write_text(PYTHON_APP.format(version=1))
    fn = reloading(tmp_path, "app.handler")
    results: dict[str, Any] = {}
    first = threading.Thread(target=lambda: results.update(first=fn.invoke({"hold_s": 3})))
    first.start()
    fn.emu.wait_for(lambda emu: _states(emu) == ["invoking"])
    (tmp_path / "app.py").write_text(PYTHON_APP.format(version=2))
    fn.emu.wait_for(lambda emu: len(fn.reloads(emu)) == 1)
    second = threading.Thread(target=lambda: results.update(second=fn.invoke({"hold_s": 1})))
    second.start()
    fn.emu.wait_for(lambda emu: _states(emu) == ["invoking", "invoking"])
    (tmp_path / "app.py").write_text(PYTHON_APP.format(version=3))
    fn.emu.wait_for(lambda emu: len(fn.reloads(emu)) == 2)
    assert [r.detail["retired"] for r in fn.emu.call(_async(fn.reloads))] == [1, 1]
    first.join(30)
    second.join(30)
    assert results == {"first": {"version": 1}, "second": {"version": 2}}
    fn.emu.wait_for(lambda emu: not emu.functions["fn"].environments)  # each retired once its invocation ended
    assert fn.invoke() == {"version": 3}


def test_node_edit_answers_with_new_code(tmp_path: Path, reloading: Any) -> None:
    (tmp_path / "index.js").write_text(NODE_APP.format(version=1))
    try:
        node_ric.command("nodejs20.x", tmp_path, "index.handler")
    except ConfigError as exc:
        require(False, exc.message)
    fn = reloading(tmp_path, "index.handler", runtime="nodejs20.x")
    assert fn.invoke() == {"version": 1}
    old = fn.env_ids()
    (tmp_path / "index.js").write_text(NODE_APP.format(version=2))
    fn.emu.wait_for(lambda emu: not set(emu.functions["fn"].environments) & old)
    assert fn.invoke() == {"version": 2}


def test_a_dependency_install_is_one_reload_not_one_per_file(tmp_path: Path, reloading: Any) -> None:
    (tmp_path / "index.js").write_text(NODE_APP.format(version=1))
    (tmp_path / "app.py").write_text(PYTHON_APP.format(version=1))
    # The folders exist before the watcher starts: a file written into a folder created a moment before may come
    # before that folder's own watch, and be seen by no watcher (the folder's creation is, which is enough to
    # reload, but this test counts files).
    package = tmp_path / "node_modules" / "left-pad"
    dirs = [package / f"lib{i}" for i in range(6)]
    for directory in dirs:
        directory.mkdir(parents=True)
    fn = reloading(tmp_path, "app.handler")
    assert fn.invoke() == {"version": 1}
    before = len(fn.emu.call(_async(fn.reloads)))
    for i in range(300):  # as npm install writes them: many files in a burst
        (dirs[i // 50] / f"f{i}.js").write_text("module.exports = 1;\n")
    written = {f"node_modules/left-pad/lib{i // 50}/f{i}.js" for i in range(300)}
    fn.emu.wait_for(lambda emu: _files(fn.reloads(emu)) >= written)
    burst = fn.emu.call(_async(fn.reloads))[before:]
    # One reload: the first batch retires the environment; the burst's later batches (as many as the machine's
    # pace makes of it) find none to retire and are not announced.
    assert sum(1 for event in burst if event.detail["retired"]) == 1, [e.detail["retired"] for e in burst]
    watcher = fn.emu.emulator.watcher
    assert watcher is not None and watcher.reloads == 1
    assert fn.invoke() == {"version": 1}


def test_bytecode_and_swap_files_do_not_reload() -> None:
    from watchfiles import Change

    from emulator.reload import _relevant

    assert not _relevant(Change.added, "/code/__pycache__/app.cpython-311.pyc")
    assert not _relevant(Change.added, "/code/.app.py.swp")
    assert not _relevant(Change.modified, "/code/.git/index")
    assert _relevant(Change.modified, "/code/app.py")
    assert _relevant(Change.added, "/code/node_modules/x/index.js")


def test_changed_files_map_to_every_function_sharing_the_directory(tmp_path: Path) -> None:
    class Pool:
        def __init__(self, code_dir: Path):
            self.config = type("C", (), {"code_dir": code_dir, "layers": ()})()

    functions: Any = {"a": Pool(tmp_path / "a"), "b": Pool(tmp_path / "a"), "c": Pool(tmp_path / "c")}
    found = owners({str(tmp_path / "a" / "x.py")}, functions)
    assert found == {"a": [Path("x.py")], "b": [Path("x.py")]}


def test_serve_says_it_watches_and_no_reload_turns_it_off(tmp_path: Path) -> None:
    from emulator.cli import _parser

    assert _parser("serve").parse_args(["serve", "--code-dir", ".", "--handler", "a.b"]).reload is True
    assert _parser("serve").parse_args(["serve", "--no-reload", "--code-dir", "."]).reload is False


def _files(reloads: list[Any]) -> set[str]:
    return {path for event in reloads for path in event.detail["files"]}


def _states(emulator: Emulator) -> list[object]:
    return [env.describe()["state"] for env in emulator.functions["fn"].environments.values()]


def _async(fn: Any) -> Any:
    async def run(emulator: Emulator) -> Any:
        return fn(emulator)

    return run


@pytest.mark.asyncio
async def test_a_watch_that_fails_leaves_serving_alone(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    from emulator.reload import CodeWatcher

    class Pool:
        config = type("C", (), {"code_dir": tmp_path / "gone", "layers": ()})()

    watcher = CodeWatcher({"fn": Pool()})  # type: ignore[dict-item]
    with caplog.at_level("WARNING", logger="lambda_freeze.reload"):
        watcher.start()
        await watcher.stop()
    assert "hot reload is off: watching the code failed" in caplog.text
    assert not watcher.ready.is_set()

"""Node.js functions under the real npm aws-lambda-ric, called through boto3: results, callbacks, errors, context,
environment, timeout and crash recovery, and an event loop that stops while the environment is frozen."""

from __future__ import annotations

import base64
import hashlib
import json
import re
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from conftest import FREEZERS, FUNCTIONS, Served, require
from emulator.cli import main as cli_main
from emulator.engine import lambda_paths, node_ric
from emulator.errors import ConfigError

pytestmark = pytest.mark.timeout(60)

RUNTIME = "nodejs20.x"
BASIC = "node/basic"
REQUEST_ID = r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}"
REPORT = re.compile(
    rf"REPORT RequestId: (?P<id>{REQUEST_ID})\tDuration: [0-9.]+ ms\tBilled Duration: \d+ ms\t"
    r"Memory Size: (?P<mem>\d+) MB\tMax Memory Used: (?P<used>\d+) MB(?P<rest>.*)"
)
TICK_MS = 10  # the interval in tests/functions/node/ticks
IDLE_S = 0.5


def _client_problem() -> str | None:
    try:
        node_ric.command(RUNTIME, FUNCTIONS / BASIC, "index.handler")
    except ConfigError as exc:
        return exc.message
    return None


@pytest.fixture
def node_client() -> None:
    """The client is installed; skips locally, and fails under CI=true, when it is not."""
    problem = _client_problem()
    require(problem is None, str(problem))  # the message names `lambda-freeze install-node-ric`


@pytest.fixture
def node(node_client: None, serve: Callable[..., Served]) -> Callable[..., Served]:
    """``node("node/basic", handler="index.handler", **settings)``: a nodejs20.x function under aws-lambda-ric."""

    def factory(code: str = BASIC, *, handler: str = "index.handler", **settings: Any) -> Served:
        return serve(code, handler=handler, runtime=RUNTIME, **settings)

    return factory


# --------------------------------------------------------------------------------------------- invocations
def test_async_handler_return_value_and_log_tail(node):
    fn = node()
    result = fn.invoke({"action": "echo", "n": 1})
    assert result.status == 200
    assert result.function_error is None
    assert result.payload == {"action": "echo", "n": 1}
    lines = result.log.splitlines()
    assert lines[0] == f"INIT_START Runtime Version: {RUNTIME}"
    request_id = result.request_id
    assert f"START RequestId: {request_id} Version: $LATEST" in lines
    # The client's console.log: timestamp, request id, level, message.
    assert any(re.fullmatch(rf"\S+Z\t{request_id}\tINFO\techo for {request_id}", line) for line in lines)
    assert lines[-2] == f"END RequestId: {request_id}"
    report = REPORT.fullmatch(lines[-1])
    assert report and report["id"] == request_id
    assert "Init Duration: " in report["rest"]  # a cold start
    assert int(report["used"]) > 10  # node's resident memory, measured
    pid = fn.invoke({"action": "pid"}).payload
    warm = fn.invoke({"action": "pid"})
    assert warm.payload == pid
    assert "Init Duration" not in warm.log


def test_callback_handler(node):
    fn = node(handler="index.callbackHandler")
    result = fn.invoke({"k": "v"})
    assert result.function_error is None
    assert result.payload == {"via": "callback", "requestId": result.request_id, "event": {"k": "v"}}
    failed = fn.invoke({"fail": "boom"})
    assert failed.function_error == "Unhandled"
    assert failed.payload["errorType"] == "Error"
    assert failed.payload["errorMessage"] == "callback failed: boom"
    assert fn.invoke({"k": 2}).payload["event"] == {"k": 2}  # the environment goes on
    assert len(fn.environments()) == 1


def test_thrown_error_reaches_caller(node):
    fn = node()
    response = fn.client.invoke(
        FunctionName=fn.name, Payload=json.dumps({"action": "throw", "detail": "negative amount"}), LogType="Tail"
    )
    assert response["StatusCode"] == 200
    assert response["ResponseMetadata"]["HTTPHeaders"]["x-amz-function-error"] == "Unhandled"
    assert response["FunctionError"] == "Unhandled"
    payload = json.loads(response["Payload"].read())
    assert payload["errorType"] == "ValidationError"
    assert payload["errorMessage"] == "bad input: negative amount"
    assert payload["trace"][0] == "ValidationError: bad input: negative amount"
    assert any("index.mjs" in frame for frame in payload["trace"])
    request_id = response["ResponseMetadata"]["RequestId"]
    log = base64.b64decode(response["LogResult"]).decode()
    assert f"\t{request_id}\tERROR\tInvoke Error \t" in log  # the client logs the error with its request id
    # A thrown error is the handler's: the runtime and its environment survive it.
    assert fn.invoke({"action": "echo"}).function_error is None
    assert len(fn.environments()) == 1


def test_context_fields(node):
    fn = node(name="ctx-fn", memory_mb=256, timeout_s=7)
    result = fn.invoke({"action": "context"}, ClientContext="eyJjdXN0b20iOiB7ImsiOiAidiJ9fQ==")
    ctx = result.payload
    assert ctx["awsRequestId"] == result.request_id
    assert ctx["functionName"] == "ctx-fn"
    assert ctx["functionVersion"] == "$LATEST"
    assert ctx["invokedFunctionArn"] == "arn:aws:lambda:us-east-1:000000000000:function:ctx-fn"
    assert ctx["memoryLimitInMB"] == "256"
    assert 6000 < ctx["remainingMs"] <= 7000
    assert ctx["logGroupName"] == "/aws/lambda/ctx-fn"
    assert re.fullmatch(r"\d{4}/\d{2}/\d{2}/\[\$LATEST\][0-9a-f]{32}", ctx["logStreamName"])
    assert ctx["clientContext"] == {"k": "v"}


def test_environment_variables(node, monkeypatch):
    monkeypatch.setenv("NODE_OPTIONS", "--no-warnings")  # the emulator's own: must not reach the function
    fn = node(name="env-fn", memory_mb=512, env={"MY_SETTING": "on"})
    env = fn.invoke({"action": "env"}).payload
    assert env["_HANDLER"] == "index.handler"
    assert env["AWS_LAMBDA_FUNCTION_NAME"] == "env-fn"
    assert env["AWS_LAMBDA_FUNCTION_MEMORY_SIZE"] == "512"
    assert env["AWS_EXECUTION_ENV"] == "AWS_Lambda_nodejs20.x"
    code_dir = FUNCTIONS / BASIC
    task_root = "/var/task" if lambda_paths.available() else str(code_dir)  # mounted there where the kernel allows
    assert env["LAMBDA_TASK_ROOT"] == task_root
    assert env["MY_SETTING"] == "on"
    assert re.fullmatch(r"127\.0\.0\.1:\d+", env["AWS_LAMBDA_RUNTIME_API"])
    # Lambda's NODE_PATH ends ...:/var/runtime/node_modules:/var/runtime:/var/task; here the client's node_modules
    # stands for the runtime's and the code directory for /var/task.
    client = node_ric.locate(code_dir)
    assert env["NODE_PATH"] == f"{client.parent}:{task_root}"
    assert "NODE_OPTIONS" not in env
    assert "PYTEST_CURRENT_TEST" not in env


def test_node_options_set_by_the_user_pass_through(node):
    fn = node(env={"NODE_OPTIONS": "--max-old-space-size=96"})
    result = fn.invoke({"action": "env"})
    assert result.function_error is None
    assert result.payload["NODE_OPTIONS"] == "--max-old-space-size=96"


# ---------------------------------------------------------------------------------------- failures, recovery
def test_timeout_then_fresh_init(node):
    fn = node(timeout_s=1)
    first_pid = fn.invoke({"action": "pid"}).payload
    result = fn.invoke({"action": "sleep", "ms": 30_000})
    assert result.function_error == "Unhandled"
    assert result.payload["errorType"] == "Sandbox.Timedout"
    assert result.payload["errorMessage"] == f"RequestId: {result.request_id} Error: Task timed out after 1.00 seconds"
    assert "Status: timeout" in result.log.splitlines()[-1]
    after = fn.invoke({"action": "pid"})
    assert after.function_error is None
    assert after.payload != first_pid
    assert after.log.startswith(f"INIT_START Runtime Version: {RUNTIME}")
    assert "Init Duration" in after.log.splitlines()[-1]  # the process group was killed: a fresh INIT


def test_process_exit_is_exit_error_then_recovery(node):
    fn = node()
    first_pid = fn.invoke({"action": "pid"}).payload
    result = fn.invoke({"action": "exit", "status": 3})
    assert result.function_error == "Unhandled"
    assert result.payload["errorType"] == "Runtime.ExitError"
    assert result.payload["errorMessage"] == (
        f"RequestId: {result.request_id} Error: Runtime exited with error: exit status 3"
    )
    assert f"\t{result.request_id}\tINFO\texiting now" in result.log
    assert "Status: error\tError Type: Runtime.ExitError" in result.log
    after = fn.invoke({"action": "pid"})
    assert after.function_error is None
    assert after.payload != first_pid
    assert "Init Duration" in after.log


# ------------------------------------------------------------------------------------------------ freezing
def _settled(fn: Served) -> None:
    """Until the environment is idle: frozen in the kernel when it freezes, back in ``next`` when it does not."""
    (env,) = fn.environments()
    if env["freezer"] == "none":
        assert env["state"] == "ready"
    else:
        assert env["state"] == "frozen"
        assert fn.wait_kernel_frozen(env["id"])


@pytest.mark.parametrize("freezer", FREEZERS)
def test_event_loop_does_not_run_while_frozen(node, freezer):
    frozen = node("node/ticks", freezer=freezer, name="frozen")
    running = node("node/ticks", freezer="none", name="running")
    before = {}
    for fn in (frozen, running):
        before[fn.name] = fn.invoke({}).payload  # with the log tail: answered once the runtime is back in `next`
        _settled(fn)
    time.sleep(IDLE_S)  # wait-ok: the frozen (and, for "running", idle) period under test
    after = {fn.name: fn.invoke({}).payload for fn in (frozen, running)}
    advanced = {name: after[name]["ticks"] - before[name]["ticks"] for name in after}
    # Frozen: the interval fires at most once on thaw, and once more on the way back into `next`.
    assert advanced["frozen"] <= 3, f"the event loop ran while frozen: {advanced['frozen']} ticks in {IDLE_S} s"
    # Not frozen: Node's event loop runs between invocations, as it would on a laptop without lambda-freeze.
    assert advanced["running"] >= 0.5 * IDLE_S * 1000 / TICK_MS, advanced
    for name in after:
        assert after[name]["pid"] == before[name]["pid"]  # the same process: frozen, not restarted
        assert after[name]["aliveMs"] - before[name]["aliveMs"] >= IDLE_S * 1000 * 0.9  # wall clock went on
    # Thawed, inside an invocation, the interval runs again.
    busy = frozen.invoke({"busyMs": 200}).payload
    assert busy["ticks"] - after["frozen"]["ticks"] >= 10


# --------------------------------------------------------------------------------------- finding the client
def test_missing_client_is_refused_at_serve_with_the_install_command(serve, monkeypatch, tmp_path):
    require(node_ric.shutil.which("node") is not None, "node is not on PATH")
    monkeypatch.setenv(node_ric.CACHE_DIR_VARIABLE, str(tmp_path / "empty-cache"))
    with pytest.raises(ConfigError) as refused:
        serve(BASIC, handler="index.handler", runtime=RUNTIME)
    assert "`lambda-freeze install-node-ric`" in refused.value.message
    assert str(tmp_path / "empty-cache" / node_ric.lock_hash()) in refused.value.message


@pytest.mark.parametrize("runtime", ["nodejs18.x", "nodejs20.x", "nodejs22.x", "nodejs24.x"])
def test_each_nodejs_runtime_runs_on_its_own_major_or_is_refused_at_serve(serve, runtime):
    require(node_ric.shutil.which("node") is not None, "node is not on PATH")
    major = int(runtime.removeprefix("nodejs").removesuffix(".x"))
    if node_ric.node().major == major:
        fn = serve(BASIC, handler="index.handler", runtime=runtime)
        result = fn.invoke({"action": "echo"})
        assert result.function_error is None, result.payload
        return
    with pytest.raises(ConfigError, match=rf"runtime {runtime} runs on Node\.js {major}, but `node` on PATH"):
        serve(BASIC, handler="index.handler", runtime=runtime)


def test_the_functions_own_client_comes_first(node, tmp_path):
    installed = node_ric.locate(tmp_path)  # no node_modules here: the project's copy
    code = tmp_path / "fn"
    (code / "node_modules").mkdir(parents=True)
    (code / "node_modules" / "aws-lambda-ric").symlink_to(installed)
    (code / "index.mjs").symlink_to(FUNCTIONS / BASIC / "index.mjs")
    assert node_ric.locate(code) == code / "node_modules" / "aws-lambda-ric"
    fn = node(str(code))  # an absolute path: FUNCTIONS / code is code
    env = fn.invoke({"action": "env"}).payload
    task_root = "/var/task" if lambda_paths.available() else str(code)
    assert env["NODE_PATH"] == f"{task_root}/node_modules:{task_root}"


def test_install_command_reports_the_cached_build(node_client, capsys):
    assert cli_main(["install-node-ric"]) == 0  # already built: nothing to do
    assert capsys.readouterr().out.strip() == str(node_ric.install_dir())


def test_cache_is_keyed_by_the_lock(monkeypatch, tmp_path):
    monkeypatch.setenv(node_ric.CACHE_DIR_VARIABLE, str(tmp_path))
    lock = (node_ric.LOCK_DIR / "package-lock.json").read_bytes()
    assert node_ric.install_dir() == tmp_path / hashlib.sha256(lock).hexdigest()
    manifest = json.loads((node_ric.LOCK_DIR / "package.json").read_text())
    assert manifest["private"] is True
    assert re.fullmatch(r"3\.\d+\.\d+", manifest["dependencies"]["aws-lambda-ric"])  # exact, 3.x (4.x needs Node 22)
    locked = json.loads(lock)["packages"]["node_modules/aws-lambda-ric"]
    assert locked["version"] == manifest["dependencies"]["aws-lambda-ric"] and locked["integrity"]


def _fake_install(directory: Path, *, abi: str, bin_path: str = "bin/index.mjs") -> Path:
    package = directory / "node_modules" / "aws-lambda-ric"
    (package / "bin").mkdir(parents=True)
    (package / "package.json").write_text(json.dumps({"name": "aws-lambda-ric", "bin": {"aws-lambda-ric": bin_path}}))
    (package / "bin" / "index.mjs").write_text("")
    stamp = {"lock_sha256": node_ric.lock_hash(), "node_abi": abi, "platform": "linux-x64", "node_version": "x"}
    (directory / ".lambda-freeze-build.json").write_text(json.dumps(stamp))
    return package


def test_build_for_another_node_is_refused(monkeypatch, tmp_path):
    monkeypatch.setenv(node_ric.CACHE_DIR_VARIABLE, str(tmp_path))
    info = node_ric.NodeInfo("/usr/bin/node", "20.1.0", "115", "linux-x64")
    package = _fake_install(node_ric.install_dir(), abi="127")
    with pytest.raises(ConfigError, match=r"node_abi '127'.*run `lambda-freeze install-node-ric` to rebuild"):
        node_ric.locate(tmp_path, info)
    (node_ric.install_dir() / ".lambda-freeze-build.json").unlink()  # an interrupted build is no build
    with pytest.raises(ConfigError, match="no complete installation"):
        node_ric.locate(tmp_path, info)
    assert node_ric.entry_point(package) == package / "bin" / "index.mjs"


def test_entry_point_comes_from_the_bin_entry(tmp_path):
    package = _fake_install(tmp_path, abi="115", bin_path="bin/other.mjs")
    with pytest.raises(ConfigError, match=r"entry point .*other\.mjs is missing"):
        node_ric.entry_point(package)
    (package / "bin" / "other.mjs").write_text("")
    assert node_ric.entry_point(package) == package / "bin" / "other.mjs"


def test_swap_into_place_replaces_an_older_install(tmp_path):
    target, build = tmp_path / "abc", tmp_path / ".abc-build"
    (target / "old").mkdir(parents=True)
    (build / "new").mkdir(parents=True)
    node_ric._swap_into_place(build, target)
    assert sorted(p.name for p in target.iterdir()) == ["new"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["abc"]  # nothing left aside

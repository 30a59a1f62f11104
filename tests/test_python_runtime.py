"""Functions under the real awslambdaric, called through boto3: results, errors, context, limits, recovery."""

from __future__ import annotations

import re
import time

import pytest

from emulator.engine import lambda_paths

pytestmark = pytest.mark.timeout(60)

REPORT = re.compile(
    r"REPORT RequestId: (?P<id>[0-9a-f-]{36})\tDuration: [0-9.]+ ms\tBilled Duration: \d+ ms\t"
    r"Memory Size: (?P<mem>\d+) MB\tMax Memory Used: (?P<used>\d+) MB(?P<rest>.*)"
)


def test_return_value_and_log_tail(serve):
    fn = serve("python/basic")
    result = fn.invoke({"action": "echo", "n": 1})
    assert result.status == 200
    assert result.function_error is None
    assert result.payload == {"action": "echo", "n": 1}
    lines = result.log.splitlines()
    assert lines[0] == "INIT_START Runtime Version: python3.11"  # a cold start's tail begins with its INIT
    start = next(line for line in lines if line.startswith("START"))
    assert start.startswith("START RequestId: ") and start.endswith(" Version: $LATEST")
    request_id = start.split()[2]
    assert f"echo for {request_id}" in lines
    assert lines[-2] == f"END RequestId: {request_id}"
    report = REPORT.fullmatch(lines[-1])
    assert report and report["id"] == request_id
    assert "Init Duration: " in report["rest"]  # a cold start
    assert int(report["used"]) > 5  # measured from the process, not made up
    second = fn.invoke({"action": "echo"})
    assert "Init Duration" not in second.log  # warm


def test_context_fields(serve):
    fn = serve("python/basic", name="ctx-fn", memory_mb=256, timeout_s=7)
    result = fn.invoke({"action": "context"}, ClientContext="eyJjdXN0b20iOiB7ImsiOiAidiJ9fQ==")
    ctx = result.payload
    assert re.fullmatch(r"[0-9a-f-]{36}", ctx["aws_request_id"])
    assert ctx["function_name"] == "ctx-fn"
    assert ctx["function_version"] == "$LATEST"
    assert ctx["invoked_function_arn"] == "arn:aws:lambda:us-east-1:000000000000:function:ctx-fn"
    assert ctx["memory_limit_in_mb"] == "256"
    assert 6000 < ctx["remaining_ms"] <= 7000
    assert ctx["log_group_name"] == "/aws/lambda/ctx-fn"
    assert re.fullmatch(r"\d{4}/\d{2}/\d{2}/\[\$LATEST\][0-9a-f]{32}", ctx["log_stream_name"])
    assert ctx["client_context"] == {"k": "v"}
    assert f"START RequestId: {ctx['aws_request_id']}" in result.log


def test_reserved_environment_variables(serve, tmp_path):
    fn = serve("python/basic", name="env-fn", memory_mb=512, env={"MY_SETTING": "on"})
    env = fn.invoke({"action": "env"}).payload
    assert env["_HANDLER"] == "app.handler"
    assert env["AWS_LAMBDA_FUNCTION_NAME"] == "env-fn"
    assert env["AWS_LAMBDA_FUNCTION_MEMORY_SIZE"] == "512"
    assert env["AWS_LAMBDA_FUNCTION_VERSION"] == "$LATEST"
    assert env["AWS_LAMBDA_LOG_GROUP_NAME"] == "/aws/lambda/env-fn"
    assert env["AWS_LAMBDA_INITIALIZATION_TYPE"] == "on-demand"
    assert env["AWS_REGION"] == env["AWS_DEFAULT_REGION"] == "us-east-1"
    assert env["AWS_EXECUTION_ENV"] == "AWS_Lambda_python3.11"
    if lambda_paths.available():  # the code mounted where Lambda has it
        assert env["LAMBDA_TASK_ROOT"] == "/var/task"
    else:
        assert env["LAMBDA_TASK_ROOT"].endswith("tests/functions/python/basic")
    assert env["TZ"] == ":UTC"
    assert env["MY_SETTING"] == "on"
    assert re.fullmatch(r"127\.0\.0\.1:\d+", env["AWS_LAMBDA_RUNTIME_API"])
    assert env["AWS_LAMBDA_RUNTIME_API"].split(":")[1] != fn.emulator.url.rsplit(":", 1)[1]
    for key in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "LAMBDA_RUNTIME_DIR"):
        assert env[key]
    assert "PYTEST_CURRENT_TEST" not in env  # the emulator's own environment does not leak in


def test_raised_exception_reaches_caller(serve):
    fn = serve("python/basic")
    result = fn.invoke({"action": "raise", "detail": "negative amount"})
    assert result.status == 200
    assert result.function_error == "Unhandled"
    assert result.payload["errorType"] == "ValueError"
    assert result.payload["errorMessage"] == "bad input: negative amount"
    assert any("raise ValueError" in frame for frame in result.payload["stackTrace"])
    assert "[ERROR] ValueError: bad input: negative amount" in result.log
    # The environment survives a handled-by-runtime error.
    assert fn.invoke({"action": "echo"}).function_error is None
    assert len(fn.environments()) == 1


def test_timeout_then_fresh_init(serve):
    fn = serve("python/basic", timeout_s=1)
    first_pid = fn.invoke({"action": "pid"}).payload
    result = fn.invoke({"action": "sleep", "seconds": 30})
    assert result.function_error == "Unhandled"
    assert result.payload["errorType"] == "Sandbox.Timedout"
    assert result.payload["errorMessage"].endswith("Task timed out after 1.00 seconds")
    assert result.payload["errorMessage"].startswith(f"RequestId: {result.request_id} Error:")
    assert re.search(r"Task timed out after 1\.00 seconds", result.log)
    assert "Status: timeout" in result.log.splitlines()[-1]
    after = fn.invoke({"action": "pid"})
    assert after.function_error is None
    assert after.payload != first_pid
    assert "Init Duration" in after.log  # the process group was killed: a fresh INIT


def test_crash_is_exit_error_then_recovery(serve):
    fn = serve("python/basic")
    first_pid = fn.invoke({"action": "pid"}).payload
    result = fn.invoke({"action": "exit", "status": 3})
    assert result.function_error == "Unhandled"
    assert result.payload["errorType"] == "Runtime.ExitError"
    assert result.payload["errorMessage"] == (
        f"RequestId: {result.request_id} Error: Runtime exited with error: exit status 3"
    )
    assert "exiting now" in result.log
    assert "Status: error\tError Type: Runtime.ExitError" in result.log
    after = fn.invoke({"action": "pid"})
    assert after.function_error is None and after.payload != first_pid


def test_import_error(serve):
    fn = serve("python/import_error")
    result = fn.invoke({})
    assert result.function_error == "Unhandled"
    assert result.payload["errorType"] == "Runtime.ImportModuleError"
    assert "Unable to import module 'app'" in result.payload["errorMessage"]
    assert "nonexistent_module_for_lambda_freeze" in result.payload["errorMessage"]
    # INIT failed, was retried inside the invocation, and failed again.
    assert sum("INIT_REPORT" in line and "Status: error" in line for line in fn.lines) == 2


def test_slow_init_is_retried_inside_the_invocation(serve):
    fn = serve("python/slow_init", init_timeout_s=0.5, timeout_s=10, env={"INIT_SLEEP_S": "1"})
    result = fn.invoke({})
    assert result.function_error is None
    assert result.payload["ok"] is True
    lines = fn.lines
    assert any(line.startswith("INIT_REPORT") and "Status: timeout" in line for line in lines)
    assert lines.count("init done") == 1  # the first INIT was cut off at its limit
    report = next(line for line in lines if line.startswith("REPORT"))
    assert "Init Duration" not in report  # INIT ran inside the invocation
    assert float(re.search(r"Duration: ([0-9.]+) ms", report)[1]) >= 1000


def test_slow_init_past_the_function_timeout(serve):
    fn = serve("python/slow_init", init_timeout_s=0.5, timeout_s=1, env={"INIT_SLEEP_S": "3"})
    result = fn.invoke({})
    assert result.function_error == "Unhandled"
    assert result.payload["errorType"] == "Sandbox.Timedout"
    assert result.payload["errorMessage"].endswith("Task timed out after 1.00 seconds")


def test_oversize_response(serve):
    fn = serve("python/basic")
    result = fn.invoke({"action": "big", "bytes": 7 * 1024 * 1024})
    assert result.function_error == "Unhandled"
    assert result.payload["errorType"] == "Function.ResponseSizeTooLarge"
    assert "exceeded maximum allowed payload size (6291556 bytes)" in result.payload["errorMessage"]
    assert fn.invoke({"action": "echo"}).function_error is None


def test_response_at_the_limit_passes(serve):
    fn = serve("python/basic")
    result = fn.invoke({"action": "big", "bytes": 6 * 1024 * 1024}, tail=False)
    assert result.function_error is None
    assert len(result.payload) == 6 * 1024 * 1024


def test_warm_invocations_reuse_one_environment(serve):
    fn = serve("python/basic")
    pids = {fn.invoke({"action": "pid"}, tail=False).payload for _ in range(19)}
    pids.add(fn.invoke({"action": "pid"}).payload)  # with the tail: answered once the runtime is back in `next`
    assert len(pids) == 1
    (env,) = fn.environments()
    assert env["invocations"] == 20
    assert env["state"] == "frozen"


def test_invocation_duration_excludes_the_frozen_time(serve):
    fn = serve("python/basic")
    fn.invoke({"action": "echo"})
    time.sleep(1.0)  # wait-ok: time spent frozen between invocations
    result = fn.invoke({"action": "echo"})
    duration = float(re.search(r"\tDuration: ([0-9.]+) ms", result.log)[1])
    assert duration < 1000  # an echo: the frozen second, had it been counted, would be all of it


def test_the_runtime_client_check_runs_again_only_when_its_files_change(tmp_path):
    from emulator.engine import python_runtime

    venv = tmp_path / "venv"
    package = venv / "lib" / "python3.11" / "site-packages" / "awslambdaric"
    package.mkdir(parents=True)
    runs = tmp_path / "runs"
    python = venv / "bin" / "python"
    python.parent.mkdir()
    # An interpreter that records each run and passes the check (``-c "import awslambdaric.bootstrap"``).
    python.write_text(f"#!/bin/sh\necho run >> {runs}\nexit 0\n")
    python.chmod(0o755)

    def check() -> str | None:
        python_runtime._client_problem.cache_clear()  # each serve is a new process
        return python_runtime._client_problem(str(python))

    assert check() is None and runs.read_text().count("run") == 1
    assert check() is None and runs.read_text().count("run") == 1  # passed on these files: not run again
    (package / "bootstrap.py").write_text("")  # the client reinstalled: its package directory changed
    assert check() is None and runs.read_text().count("run") == 2
    python.write_text(f"#!/bin/sh\necho run >> {runs}\necho 'ModuleNotFoundError: awslambdaric' >&2\nexit 1\n")
    assert check() == "ModuleNotFoundError: awslambdaric"  # the interpreter changed: checked, and it fails
    assert check() == "ModuleNotFoundError: awslambdaric"  # a failed check is never remembered
    assert runs.read_text().count("run") == 4

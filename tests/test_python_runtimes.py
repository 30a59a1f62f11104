"""Python functions see what Lambda gives them: a runtime virtualenv per interpreter version (awslambdaric and the
pinned boto3), their code and its requirements.txt build first on sys.path, nothing of the emulator's packages; each
python3.X found on this machine serves; a runtime without an interpreter is refused at serve, by name."""

from __future__ import annotations

import json
import logging
import signal
import stat
import subprocess
import sys
from pathlib import Path

import pytest
from test_cli import Serve

from conftest import FUNCTIONS, lambda_client, require
from emulator import FunctionConfig, ServerConfig
from emulator.cli import main
from emulator.config.settings import PYTHON_RUNTIMES
from emulator.engine import dependencies, lambda_paths, python_runtime
from emulator.errors import ConfigError
from emulator.server import Emulator

pytestmark = pytest.mark.timeout(240)

PROBE = "python/runtime_probe"
RUNTIME_PINS = dict(
    line.split(";")[0].strip().split("==")
    for line in python_runtime.REQUIREMENTS.read_text().splitlines()
    if "==" in line and 'python_version >= "3.10"' in line
)


def interpreter_or_skip(runtime: str) -> str:
    """The interpreter of ``runtime`` on this machine. Every version these tests ask for (3.9-3.13) is on this
    kind of machine: a missing one skips locally and fails under CI=true, as every missing prerequisite does."""
    try:
        return python_runtime.find_interpreter(runtime)
    except ConfigError as exc:
        require(False, f"this machine has no interpreter for {runtime}: {exc.message}")
        raise  # require() has failed or skipped the test


@pytest.mark.parametrize("runtime", [r for r in PYTHON_RUNTIMES if r != "python3.14"])
def test_each_python_runtime_runs_its_own_interpreter_and_sdk(serve, runtime):
    interpreter_or_skip(runtime)
    fn = serve(PROBE, runtime=runtime)
    result = fn.invoke({"modules": ["pytest", "orjson", "uvloop", "emulator", "awslambdaric"]})
    assert result.function_error is None, result.payload
    probe = result.payload
    assert probe["version"] == runtime.removeprefix("python")
    assert Path(probe["executable"]).parent == python_runtime.venv_python(runtime).parent
    # The code directory first on sys.path, as /var/task on Lambda; the emulator's virtualenv nowhere.
    code = "/var/task" if lambda_paths.available() else str((FUNCTIONS / PROBE).resolve())  # mounted there or not
    assert probe["path"][0] == code
    assert not any(entry.startswith(sys.prefix) for entry in probe["path"])
    assert probe["importable"] == {"pytest": False, "orjson": False, "uvloop": False, "emulator": False,
                                   "awslambdaric": True}
    assert probe["boto3_file"].startswith(str(python_runtime.venv_dir(runtime)))
    if runtime != "python3.9":  # python3.9 takes the last boto3 that supports it
        assert probe["boto3"] == RUNTIME_PINS["boto3"]


def test_a_package_only_the_emulator_has_fails_as_on_lambda(serve):
    fn = serve("python/emulator_only_import")
    result = fn.invoke({"a": 1})
    assert result.function_error == "Unhandled"
    assert result.payload["errorType"] == "Runtime.ImportModuleError"
    assert "No module named 'orjson'" in result.payload["errorMessage"]


def _function_importing_pymysql(tmp_path: Path) -> Path:
    code = tmp_path / "code"
    code.mkdir()
    (code / "app.py").write_text(
        "from importlib.metadata import version\n\nimport pymysql\n\n\ndef handler(event, context):\n"
        "    return {'pymysql': version('PyMySQL'), 'from': pymysql.__file__}\n"
    )
    return code


def test_requirements_are_built_into_a_cache_keyed_by_the_file_and_the_runtime(serve, tmp_path, monkeypatch):
    monkeypatch.setenv(dependencies.CACHE_DIR_VARIABLE, str(tmp_path / "builds"))
    code = _function_importing_pymysql(tmp_path)
    missing = serve(str(code), name="without").invoke({})
    assert missing.payload["errorType"] == "Runtime.ImportModuleError"

    (code / "requirements.txt").write_text("PyMySQL==1.2.4\n")
    built = serve(str(code), name="with").invoke({})
    assert built.function_error is None, built.payload
    target = dependencies.build_dir(code, "python3.11")
    assert target is not None and target.parent == tmp_path / "builds" and target.name.startswith("python3.11-")
    assert built.payload == {"pymysql": "1.2.4", "from": str(target / "pymysql" / "__init__.py")}

    (code / "requirements.txt").write_text("PyMySQL==1.2.4\n# a changed file is a new build\n")
    assert dependencies.build_dir(code, "python3.11") != target
    assert dependencies.built(code, "python3.11") is None


def test_no_build_runs_the_directory_as_it_is(serve, tmp_path, monkeypatch):
    monkeypatch.setenv(dependencies.CACHE_DIR_VARIABLE, str(tmp_path / "builds"))
    code = _function_importing_pymysql(tmp_path)
    (code / "requirements.txt").write_text("PyMySQL==1.2.4\n")
    result = serve(str(code), build=False).invoke({})
    assert result.payload["errorType"] == "Runtime.ImportModuleError"
    assert not (tmp_path / "builds").exists()


@pytest.mark.asyncio
async def test_a_failed_build_is_shown_with_pips_message_and_the_function_is_not_served(tmp_path, monkeypatch,
                                                                                       caplog):
    monkeypatch.setenv(dependencies.CACHE_DIR_VARIABLE, str(tmp_path / "builds"))
    broken = _function_importing_pymysql(tmp_path)
    (broken / "requirements.txt").write_text("this is not a requirement !!\n")
    good = FunctionConfig(name="good", code_dir=FUNCTIONS / "python/basic", handler="app.handler")
    emulator = Emulator(ServerConfig(port=0, functions=(
        FunctionConfig(name="broken", code_dir=broken, handler="app.handler"), good)))
    with caplog.at_level(logging.INFO, logger="lambda_freeze.prepare"):
        await emulator.start()
    try:
        assert list(emulator.functions) == ["good"]
    finally:
        await emulator.stop()
    (message,) = [r.getMessage() for r in caplog.records if r.levelno == logging.ERROR]
    assert message.startswith(f"function broken is not served: pip could not install {broken / 'requirements.txt'}")
    assert "Invalid requirement" in message  # pip's own words


def test_a_runtime_without_an_interpreter_is_refused_at_serve_with_its_name(tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(python_runtime, "candidates", lambda version: iter(()))
    monkeypatch.setenv(python_runtime.CACHE_DIR_VARIABLE, str(tmp_path / "runtimes"))
    status = main(["serve", "--code-dir", str(FUNCTIONS / "python/basic"), "--handler", "app.handler",
                   "--runtime", "python3.14", "--port", "0"])
    assert status == 2
    err = capsys.readouterr().err
    assert "runtime python3.14 needs a Python 3.14 interpreter, and none was found" in err
    assert "pyenv install 3.14" in err and "--python-executable python3.14=" in err


def test_python314_is_found_where_the_machine_has_it_and_refused_at_serve_where_it_has_none(tmp_path, capsys):
    try:
        found = python_runtime.find_interpreter("python3.14")
    except ConfigError:
        status = main(["serve", "--code-dir", str(FUNCTIONS / "python/basic"), "--handler", "app.handler",
                       "--runtime", "python3.14", "--port", "0"])
        assert status == 2
        assert "runtime python3.14 needs a Python 3.14 interpreter" in capsys.readouterr().err
        return
    version = subprocess.run([found, "--version"], capture_output=True, text=True, check=True).stdout
    assert version.startswith("Python 3.14"), f"{found} is {version}"


def test_a_pyenv_shim_that_answers_command_not_found_is_not_an_interpreter(tmp_path, monkeypatch):
    shim = tmp_path / "python3.12"
    shim.write_text("#!/bin/sh\necho 'pyenv: python3.12: command not found' >&2\nexit 127\n")
    shim.chmod(shim.stat().st_mode | stat.S_IXUSR)
    monkeypatch.setitem(python_runtime._explicit, "3.12", str(shim))
    found = interpreter_or_skip("python3.12")
    assert found != str(shim)
    monkeypatch.setattr(python_runtime, "candidates", lambda version: iter([str(shim)]))
    with pytest.raises(ConfigError, match=r"needs a Python 3\.12 interpreter, and none was found"):
        python_runtime.find_interpreter("python3.12")


def test_python_executable_names_an_interpreter_outside_the_usual_places(tmp_path, monkeypatch):
    real = interpreter_or_skip("python3.12")
    elsewhere = tmp_path / "opt" / "bin" / "py"
    elsewhere.parent.mkdir(parents=True)
    elsewhere.symlink_to(real)
    monkeypatch.setattr(python_runtime, "_pyenv_roots", lambda: [])
    monkeypatch.setattr(python_runtime, "_uv_roots", lambda: [])
    monkeypatch.setattr(python_runtime.shutil, "which", lambda name: None)
    python_runtime.set_interpreter("python3.12", str(elsewhere))
    try:
        assert python_runtime.find_interpreter("python3.12") == str(elsewhere)
    finally:
        python_runtime._explicit.pop("3.12", None)


def test_install_runtime_reports_the_cached_environment(capsys):
    require(python_runtime.installed("python3.11"), "the python3.11 runtime is installed (docker/install.sh)")
    assert main(["install-runtime", "python3.11"]) == 0
    assert capsys.readouterr().out.strip() == str(python_runtime.venv_python("python3.11"))


def test_sam_inits_python313_hello_world_serves_and_answers_unchanged():
    """The app ``sam init`` writes (python3.13 hello world, its requirements.txt naming requests), served as it is."""
    interpreter_or_skip("python3.13")
    app = Path(__file__).parent / "templates/sam-init-python3.13"
    serve = Serve("--template", str(app / "template.yaml"))
    try:
        event = (app / "events/event.json").read_bytes()
        response = lambda_client(serve.url).invoke(FunctionName="HelloWorldFunction", Payload=event)
        payload = json.loads(response["Payload"].read())
        assert "FunctionError" not in response, payload
        assert payload == {"statusCode": 200, "body": json.dumps({"message": "hello world"})}
    finally:
        assert serve.stop(signal.SIGTERM) == 0
    build = dependencies.built((app / "hello_world").resolve(), "python3.13")
    assert build is not None and (build / "requests" / "__init__.py").is_file()

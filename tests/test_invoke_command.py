"""``lambda-freeze invoke``: the payload from a file or stdin, the invocation types, the endpoint from the
environment, the functions served named when the name is wrong, and one invocation without a server."""

from __future__ import annotations

import json
import os
import signal
import subprocess
from pathlib import Path

import pytest
from test_cli import Serve, command

from conftest import FUNCTIONS
from emulator.invoke_command import default_endpoint, read_payload

pytestmark = pytest.mark.timeout(60)

BASIC = str(FUNCTIONS / "python/basic")


@pytest.fixture(scope="module")
def served():
    serve = Serve("--code-dir", BASIC, "--handler", "app.handler", "--name", "hello", "--no-reload")
    yield serve
    serve.stop(signal.SIGTERM)


def invoke(*args: str, stdin: str | None = None, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*command(), "invoke", *args],
        input=stdin,
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, **(env or {})},
    )


@pytest.mark.parametrize("form", ["@{}", "file://{}"])
def test_payload_from_a_file(served, tmp_path: Path, form: str):
    event = tmp_path / "event.json"
    event.write_text('{"action": "echo", "from": "file"}')
    done = invoke("hello", "--payload", form.format(event), "--endpoint-url", served.url)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout) == {"action": "echo", "from": "file"}


def test_payload_from_stdin(served):
    done = invoke("hello", "--payload", "-", "--endpoint-url", served.url, stdin='{"action": "echo", "from": "stdin"}')
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout) == {"action": "echo", "from": "stdin"}


def test_payload_errors_name_their_source(tmp_path: Path):
    bad = tmp_path / "bad.json"
    bad.write_text("{nope")
    done = invoke("hello", "--payload", f"@{bad}")
    assert done.returncode == 2 and f"@{bad} is not JSON" in done.stderr
    missing = invoke("hello", "--payload", f"@{tmp_path / 'gone.json'}")
    assert missing.returncode == 2 and "cannot read" in missing.stderr and "gone.json" in missing.stderr
    assert read_payload("") == b"{}"


def test_invocation_types(served):
    queued = invoke("hello", "--invocation-type", "Event", "--payload", '{"action": "echo"}', "--endpoint", served.url)
    assert queued.returncode == 0 and queued.stdout.startswith("202: queued as "), queued.stderr
    dry = invoke("hello", "--invocation-type", "DryRun", "--endpoint-url", served.url)
    assert dry.returncode == 0 and dry.stdout.startswith("204"), dry.stderr


def test_endpoint_defaults_from_the_environment(served):
    port = served.url.rsplit(":", 1)[1]
    done = invoke("hello", "--payload", '{"action": "echo"}', env={"LAMBDA_FREEZE_PORT": port})
    assert done.returncode == 0, done.stderr
    assert default_endpoint({"LAMBDA_FREEZE_HOST": "0.0.0.0", "LAMBDA_FREEZE_PORT": "9"}) == "http://127.0.0.1:9"
    assert default_endpoint({}) == "http://127.0.0.1:8080"


def test_an_unknown_function_lists_the_ones_served(served):
    done = invoke("helo", "--endpoint-url", served.url)
    assert done.returncode == 1
    assert "ResourceNotFoundException" in done.stderr
    assert f"functions served at {served.url}: hello" in done.stderr


def test_one_invocation_without_a_server(tmp_path: Path):
    event = tmp_path / "event.json"
    event.write_text('{"action": "echo", "local": true}')
    done = invoke("--code-dir", BASIC, "--handler", "app.handler", "--payload", f"@{event}")
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout) == {"action": "echo", "local": True}
    assert "START RequestId:" in done.stderr and "REPORT RequestId:" in done.stderr
    failed = invoke("--code-dir", BASIC, "--handler", "app.handler", "--payload", '{"action": "raise"}')
    assert failed.returncode == 1 and json.loads(failed.stdout)["errorType"] == "ValueError"

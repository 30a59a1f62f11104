"""A Node.js function's package.json dependencies, installed as sam build installs them: npm ci from the lock into a
cached build (no devDependencies), found by require(); and the nodejs20.x hello-world app as sam init writes it."""

from __future__ import annotations

import json
import signal
from pathlib import Path

import pytest
from test_cli import Serve

from conftest import FUNCTIONS, lambda_client, require
from emulator.engine import dependencies, node_dependencies, node_ric

pytestmark = pytest.mark.timeout(180)

WITH_DEPENDENCIES = FUNCTIONS / "node/with_dependencies"


@pytest.fixture
def node_client() -> None:
    require(node_ric.shutil.which("node") is not None, "node is not on PATH")
    require(node_ric.shutil.which("npm") is not None, "npm is not on PATH")
    try:
        node_ric.command("nodejs20.x", WITH_DEPENDENCIES, "index.handler")
    except node_ric.ConfigError as exc:
        require(False, exc.message)


def test_dependencies_are_installed_from_the_lock_into_a_cached_build(node_client, serve, tmp_path, monkeypatch):
    monkeypatch.setenv(dependencies.CACHE_DIR_VARIABLE, str(tmp_path / "builds"))
    fn = serve(str(WITH_DEPENDENCIES), handler="index.handler", runtime="nodejs20.x")
    result = fn.invoke({})
    assert result.function_error is None, result.payload
    assert result.payload == {"camel": "fromTheLock", "version": "6.3.0", "devDependency": "absent"}
    modules = node_dependencies.built(WITH_DEPENDENCIES, "nodejs20.x")
    assert modules is not None and modules.parent.parent == tmp_path / "builds"
    assert not (WITH_DEPENDENCIES / "node_modules").exists()  # the code directory is left as it was


def test_no_build_runs_the_directory_as_it_is(node_client, serve, tmp_path, monkeypatch):
    monkeypatch.setenv(dependencies.CACHE_DIR_VARIABLE, str(tmp_path / "builds"))
    fn = serve(str(WITH_DEPENDENCIES), handler="index.handler", runtime="nodejs20.x", build=False)
    result = fn.invoke({})
    assert result.payload["errorType"] == "Runtime.ImportModuleError"
    assert "Cannot find module 'camelcase'" in result.payload["errorMessage"]


def test_sam_inits_nodejs20_hello_world_serves_and_answers_unchanged(node_client):
    """The app ``sam init`` writes (nodejs20.x hello world: axios in its dependencies, no lock), served as it is."""
    app = Path(__file__).parent / "templates/sam-init-nodejs20.x"
    serve = Serve("--template", str(app / "template.yaml"))
    try:
        event = (app / "events/event.json").read_bytes()
        response = lambda_client(serve.url).invoke(FunctionName="HelloWorldFunction", Payload=event)
        payload = json.loads(response["Payload"].read())
        assert "FunctionError" not in response, payload
        assert payload == {"statusCode": 200, "body": json.dumps({"message": "hello world"}, separators=(",", ":"))}
    finally:
        assert serve.stop(signal.SIGTERM) == 0
    modules = node_dependencies.built((app / "hello-world").resolve(), "nodejs20.x")
    assert modules is not None and (modules / "axios" / "package.json").is_file()

"""Layers: a SAM template's local LayerVersions (in Globals and on the function) and --layer, laid out as Lambda
lays them out under /opt: python/ and its site-packages on sys.path, nodejs/(nodeNN/)node_modules on NODE_PATH,
bin/ on PATH, lib/ on LD_LIBRARY_PATH, a later layer's file winning; an ARN is named in a warning."""

from __future__ import annotations

import json
import logging
import signal
from pathlib import Path

import pytest
from test_cli import Serve

from conftest import FUNCTIONS, lambda_client, require
from emulator.cli import main
from emulator.config.sam import functions_from_template
from emulator.engine import lambda_paths, node_ric
from emulator.errors import ConfigError

pytestmark = pytest.mark.timeout(120)

LAYERS = Path(__file__).parent / "templates/layers"
TEMPLATE = LAYERS / "template.yaml"


def test_template_layers_in_lambdas_order_with_globals_first(caplog):
    with caplog.at_level(logging.WARNING, logger="lambda_freeze.sam"):
        python, node = functions_from_template(TEMPLATE)
    assert python.layers == ((LAYERS / "greet_layer").resolve(), (LAYERS / "override_layer").resolve())
    assert node.layers == ((LAYERS / "greet_layer").resolve(), (LAYERS / "node_layer").resolve())
    warnings = [r.getMessage() for r in caplog.records if "Layers" in r.getMessage()]
    assert warnings == [
        f"{TEMPLATE}: Resources.PythonFunction.Properties.Layers: "
        "arn:aws:lambda:us-east-1:123456789012:layer:published:3 is not honoured: a published layer is not "
        "downloaded; serve its content locally (an AWS::Serverless::LayerVersion with ContentUri, or --layer DIR)"
    ]


def test_a_layer_that_is_not_a_layer_resource_is_an_error(tmp_path):
    (tmp_path / "src").mkdir()
    path = tmp_path / "template.yaml"
    path.write_text(
        "Transform: AWS::Serverless-2016-10-31\nResources:\n"
        "  Queue: {Type: AWS::SQS::Queue}\n"
        "  Fn:\n    Type: AWS::Serverless::Function\n"
        "    Properties: {CodeUri: src, Handler: app.handler, Runtime: python3.11, Layers: [!Ref Queue]}\n"
    )
    with pytest.raises(ConfigError, match=r"Layers: Queue is a AWS::SQS::Queue, not a layer"):
        functions_from_template(path)


def test_python_and_node_functions_see_their_layers():
    require(node_ric.shutil.which("node") is not None, "node is not on PATH")
    serve = Serve("--template", str(TEMPLATE))
    try:
        client = lambda_client(serve.url)
        python = client.invoke(FunctionName="PythonFunction", Payload=b"{}")
        payload = json.loads(python["Payload"].read())
        assert "FunctionError" not in python, payload
        assert payload["greet"] == "hello layers, from the override layer"  # the later layer's file wins
        assert payload["only_in_greet"] == "greet layer"  # the Globals layer is there too
        assert payload["sitelib"] == "override layer's site-packages"
        assert payload["tool"] == "tool from the override layer"  # bin/ on PATH
        # Lambda's /opt/lib where the kernel gives the runtime a mount namespace of its own, else the real folder.
        lib = "/opt/lib" if lambda_paths.available() else str((LAYERS / "override_layer/lib").resolve())
        assert lib in payload["LD_LIBRARY_PATH"].split(":")
        node = client.invoke(FunctionName="NodeFunction", Payload=b"{}")
        answer = json.loads(node["Payload"].read())
        assert "FunctionError" not in node, answer
        assert answer == {"greet": "hello layers, from the node layer", "where": "node20 folder of the node layer"}
    finally:
        assert serve.stop(signal.SIGTERM) == 0
    said = ("functions see their code at /var/task and their layers at /opt" if lambda_paths.available()
            else "layers are used from their own directories, not mounted at /opt")
    assert said in "".join(serve.stderr)


def test_layer_option_for_the_code_dir_function(tmp_path):
    code = tmp_path / "code"
    code.mkdir()
    (code / "app.py").write_text("import greetlib\n\n\ndef handler(event, context):\n"
                                 "    return greetlib.greet('cli')\n")
    serve = Serve("--code-dir", str(code), "--handler", "app.handler", "--name", "withlayer",
                  "--layer", str(LAYERS / "greet_layer"))
    try:
        response = lambda_client(serve.url).invoke(FunctionName="withlayer", Payload=b"{}")
        assert response["Payload"].read() == b'"hello cli, from the greet layer"'
    finally:
        assert serve.stop(signal.SIGTERM) == 0


def test_a_missing_layer_directory_is_refused(capsys, tmp_path):
    status = main(["serve", "--code-dir", str(FUNCTIONS / "python/basic"), "--handler", "app.handler",
                   "--layer", str(tmp_path / "nope"), "--port", "0"])
    assert status == 2
    assert f"layer directory {tmp_path / 'nope'} does not exist" in capsys.readouterr().err

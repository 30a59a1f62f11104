"""The command line's function options over every function served (of a SAM template, a config file, --code-dir),
or, after --function NAME, over that function alone; every option that nothing takes is named in a warning."""

from __future__ import annotations

import json
import logging
import signal
from pathlib import Path

import pytest
from test_cli import Serve

from conftest import lambda_client
from emulator import cli
from emulator.config import function_options
from emulator.config.settings import DEFAULT_MEMORY_MB, ServerConfig
from emulator.errors import ConfigError

pytestmark = pytest.mark.timeout(60)

TEMPLATE = """\
Transform: AWS::Serverless-2016-10-31
Globals:
  Function:
    Timeout: 5
Resources:
  Orders:
    Type: AWS::Serverless::Function
    Properties:
      CodeUri: src
      Handler: app.handler
      Runtime: python3.11
      Environment:
        Variables:
          COLOR: template
  Billing:
    Type: AWS::Serverless::Function
    Properties: {CodeUri: src, Handler: app.handler, Runtime: python3.11, FunctionName: billing-fn, MemorySize: 256}
"""
APP = """\
import os


def handler(event, context):
    return {"env": {k: os.environ.get(k) for k in event["names"]},
            "memory": context.memory_limit_in_mb,
            "remaining_ms": context.get_remaining_time_in_millis()}
"""


@pytest.fixture
def project(tmp_path: Path) -> Path:
    (tmp_path / "src").mkdir()
    (tmp_path / "src/app.py").write_text(APP)
    (tmp_path / "template.yaml").write_text(TEMPLATE)
    return tmp_path


def config(*words: str) -> ServerConfig:
    return cli._server_config(cli._parser("serve").parse_args(["serve", *words]))


def by_name(served: ServerConfig) -> dict[str, object]:
    return {f.name: f for f in served.functions}


def test_options_before_any_function_apply_to_every_template_function(project):
    served = by_name(config("--template", str(project / "template.yaml"), "--timeout", "20", "--memory", "1024",
                            "--detect-leaks", "--idle-timeout", "30", "--env", "COLOR=cli", "--env", "ALL=1"))
    for function in served.values():
        assert (function.timeout_s, function.memory_mb, function.detect_leaks, function.idle_timeout_s) == (
            20.0, 1024, True, 30.0)
        assert function.env["COLOR"] == "cli" and function.env["ALL"] == "1"


def test_options_after_function_name_apply_to_that_function_only(project):
    served = by_name(config(
        "--template", str(project / "template.yaml"), "--env", "ALL=1", "--max-invocations", "7",
        "--function", "Orders", "--timeout", "10", "--env", "COLOR=orders", "--no-reset-on-timeout",
        "--function", "billing-fn", "--memory", "512", "--detect-leaks",
    ))
    orders, billing = served["Orders"], served["billing-fn"]
    assert (orders.timeout_s, orders.memory_mb, orders.detect_leaks, orders.reset_on_timeout) == (
        10.0, DEFAULT_MEMORY_MB, False, False)
    assert (billing.timeout_s, billing.memory_mb, billing.detect_leaks, billing.reset_on_timeout) == (
        5.0, 512, True, True)  # the template's Globals timeout stays
    assert dict(orders.env) == {"COLOR": "orders", "ALL": "1"}
    assert dict(billing.env) == {"ALL": "1"}
    assert orders.max_invocations == billing.max_invocations == 7


def test_lambda_paths_are_on_unless_a_function_opts_out(project):
    served = by_name(config("--template", str(project / "template.yaml"), "--function", "Orders", "--no-lambda-paths"))
    assert (served["Orders"].lambda_paths, served["billing-fn"].lambda_paths) == (False, True)
    served = by_name(config("--template", str(project / "template.yaml"), "--no-lambda-paths",
                            "--function", "Billing", "--lambda-paths"))
    assert (served["Orders"].lambda_paths, served["billing-fn"].lambda_paths) == (False, True)
    assert function_options.describe({"lambda_paths": False}) == "--no-lambda-paths"  # as typed, in a warning


def test_a_template_function_is_named_by_its_logical_id_too(project):
    billing = by_name(config("--template", str(project / "template.yaml"), "--function", "Billing",
                             "--memory", "2048"))["billing-fn"]
    assert billing.memory_mb == 2048


def test_options_reach_a_config_files_functions(project):
    (project / "lf.toml").write_text(
        '[functions.a]\ncode_dir = "src"\nhandler = "app.handler"\ntimeout = 9\n\n'
        '[functions.b]\ncode_dir = "src"\nhandler = "app.handler"\ntimeout = 9\n'
    )
    served = by_name(config("--config", str(project / "lf.toml"), "--env", "X=1", "--function", "b", "--timeout", "4"))
    assert (served["a"].timeout_s, served["b"].timeout_s) == (9.0, 4.0)  # the command line over the file
    assert served["a"].env == served["b"].env == {"X": "1"}


def test_the_code_dir_function_takes_its_own_scope(project):
    served = config("--code-dir", str(project / "src"), "--handler", "app.handler", "--memory", "256",
                    "--function", "function", "--timeout", "8")
    (function,) = served.functions
    assert (function.name, function.timeout_s, function.memory_mb) == ("function", 8.0, 256)


def test_what_nothing_takes_is_named(project, caplog):
    with caplog.at_level(logging.WARNING, logger="lambda_freeze"):
        config("--template", str(project / "template.yaml"), "--handler", "x.y", "--runtime", "python3.12",
               "--function", "Typo", "--timeout", "10", "--env", "A=1", "--function", "Orders")
    messages = [r.getMessage() for r in caplog.records]
    assert ("--function Typo --timeout 10.0 --env A=1 is not honoured: no function is named Typo "
            "(served: Orders, billing-fn)") in messages
    assert "--function Orders is followed by no function option: it changes nothing" in messages
    for option in ("--handler", "--runtime"):
        assert (f"{option} is not honoured: it describes the --code-dir function, and there is none") in messages


def test_a_bad_scoped_value_names_its_function(project):
    with pytest.raises(ConfigError, match=r"--function Orders: .*timeout must be 1-900 seconds, not 1000"):
        config("--template", str(project / "template.yaml"), "--function", "Orders", "--timeout", "1000")


def test_the_functions_run_with_their_own_options(project):
    serve = Serve("--template", str(project / "template.yaml"), "--env", "ALL=1",
                  "--function", "Orders", "--timeout", "30", "--env", "COLOR=orders",
                  "--function", "Billing", "--memory", "512")
    try:
        client = lambda_client(serve.url)
        payload = json.dumps({"names": ["ALL", "COLOR"]}).encode()
        orders = json.loads(client.invoke(FunctionName="Orders", Payload=payload)["Payload"].read())
        billing = json.loads(client.invoke(FunctionName="billing-fn", Payload=payload)["Payload"].read())
        assert orders["env"] == {"ALL": "1", "COLOR": "orders"}
        assert billing["env"] == {"ALL": "1", "COLOR": None}
        assert (orders["memory"], billing["memory"]) == (str(DEFAULT_MEMORY_MB), "512")  # a string, as on Lambda
        assert 5_000 < orders["remaining_ms"] <= 30_000  # beyond the template's 5 s: the scoped timeout
        assert billing["remaining_ms"] <= 5_000
    finally:
        assert serve.stop(signal.SIGTERM) == 0

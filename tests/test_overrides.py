"""A template's functions under the command line's overrides, with SAM's precedence: --env over --env-file over the
function's --env-vars map over its Parameters map over the template; --parameter-overrides feed !Ref; --env-vars
sets only declared variables, and each one it ignores is named."""

from __future__ import annotations

import json
import logging
import signal
from pathlib import Path

import pytest
from test_cli import Serve

from conftest import lambda_client
from emulator import cli
from emulator.config.settings import ServerConfig
from emulator.errors import ConfigError, LambdaFreezeError

pytestmark = pytest.mark.timeout(60)

TEMPLATE = """\
Transform: AWS::Serverless-2016-10-31
Parameters:
  Stage: {Type: String, Default: dev}
  Secret: {Type: String}
Globals:
  Function:
    Environment:
      Variables:
        STAGE: !Ref Stage
Resources:
  Reader:
    Type: AWS::Serverless::Function
    Properties:
      CodeUri: src
      Handler: app.handler
      Runtime: python3.11
      Environment:
        Variables:
          COLOR: template
          SECRET: !Ref Secret
          LEVEL: template
  Other:
    Type: AWS::Serverless::Function
    Properties: {CodeUri: src, Handler: app.handler, Runtime: python3.11, FunctionName: other-fn}
"""
APP = "import os\n\n\ndef handler(event, context):\n    return {k: os.environ.get(k) for k in event['names']}\n"


@pytest.fixture
def project(tmp_path: Path) -> Path:
    (tmp_path / "src").mkdir()
    (tmp_path / "src/app.py").write_text(APP)
    (tmp_path / "template.yaml").write_text(TEMPLATE)
    (tmp_path / "env.json").write_text(json.dumps({
        "Parameters": {"COLOR": "from-parameters", "LEVEL": "from-parameters", "UNDECLARED": "x"},
        "Reader": {"LEVEL": "from-function-map", "NOT_DECLARED": "y"},
        "other-fn": {"STAGE": "by-function-name"},
    }))
    (tmp_path / ".env").write_text("# dotenv\nexport FROM_DOTENV=1\nCOLOR='from-dotenv'\n")
    return tmp_path


def config(project: Path, *extra: str) -> ServerConfig:
    args = cli._parser("serve").parse_args(["serve", "--template", str(project / "template.yaml"), *extra])
    return cli._server_config(args)


def envs(served: ServerConfig) -> dict[str, dict[str, str]]:
    return {f.name: dict(f.env) for f in served.functions}


def test_template_alone(project, caplog):
    assert envs(config(project)) == {"Reader": {"STAGE": "dev", "COLOR": "template", "LEVEL": "template"},
                                     "other-fn": {"STAGE": "dev"}}
    assert any("Variables.SECRET is not honoured: !Ref Secret: the parameter has no Default" in r.getMessage()
               for r in caplog.records)


def test_precedence_of_every_override(project, caplog):
    with caplog.at_level(logging.WARNING, logger="lambda_freeze.sam"):
        served = config(project, "--parameter-overrides", "Stage=prod", "ParameterKey=Secret,ParameterValue=s3",
                        "Nope=1", "--env-vars", str(project / "env.json"), "--env-file", str(project / ".env"),
                        "--env", "LEVEL=from-cli")
    assert envs(served) == {
        "Reader": {
            "STAGE": "prod",  # --parameter-overrides through !Ref
            "SECRET": "s3",  # a parameter without Default, given by SAM's long form
            "COLOR": "from-dotenv",  # --env-file over --env-vars' Parameters
            "LEVEL": "from-cli",  # --env over the function's own --env-vars map
            "FROM_DOTENV": "1",  # --env-file and --env set any variable
        },
        "other-fn": {"STAGE": "by-function-name", "FROM_DOTENV": "1", "COLOR": "from-dotenv", "LEVEL": "from-cli"},
    }
    messages = [r.getMessage() for r in caplog.records]
    assert f"{project / 'template.yaml'}: --parameter-overrides Nope is not honoured: the template has no such " \
           "parameter" in messages
    assert ("--env-vars Reader.NOT_DECLARED is not honoured: Reader does not declare NOT_DECLARED in "
            "Environment.Variables (SAM ignores it too; declare it, or use --env-file / --env)") in messages


def test_bad_override_files_are_named(project):
    (project / "bad.json").write_text("[1, 2]")
    with pytest.raises(ConfigError, match=r"--env-vars .*bad\.json: expected"):
        config(project, "--env-vars", str(project / "bad.json"))
    (project / "bad.env").write_text("no equals sign\n")
    with pytest.raises(ConfigError, match=r"bad\.env:1: expected NAME=value"):
        config(project, "--env-file", str(project / "bad.env"))


def test_the_function_sees_the_overrides(project):
    serve = Serve("--template", str(project / "template.yaml"), "--parameter-overrides", "Stage=prod",
                  "--env-vars", str(project / "env.json"), "--env", "LEVEL=from-cli")
    try:
        response = lambda_client(serve.url).invoke(
            FunctionName="Reader", Payload=json.dumps({"names": ["STAGE", "COLOR", "LEVEL", "UNDECLARED"]}).encode())
        assert json.loads(response["Payload"].read()) == {"STAGE": "prod", "COLOR": "from-parameters",
                                                          "LEVEL": "from-cli", "UNDECLARED": None}
    finally:
        assert serve.stop(signal.SIGTERM) == 0


def test_a_config_file_lays_settings_over_template_functions_by_name(project):
    (project / "lf.toml").write_text(
        '[functions.Reader]\ntimeout = 12\nmemory = 512\ndetect_leaks = true\nenv = {COLOR = "from-config", '
        'EXTRA = "config"}\n\n[functions.other-fn]\nreserved_concurrency = 2\n'
    )
    served = config(project, "--config", str(project / "lf.toml"), "--env-vars", str(project / "env.json"))
    reader, other = served.functions
    assert (reader.timeout_s, reader.memory_mb, reader.detect_leaks) == (12.0, 512, True)
    assert other.reserved_concurrency == 2  # by FunctionName
    # The config file's variables over the template's, under --env-vars.
    assert reader.env == {"STAGE": "dev", "COLOR": "from-parameters", "LEVEL": "from-function-map",
                          "EXTRA": "config"}


def test_a_config_table_without_code_dir_must_name_a_template_function(project):
    (project / "lf.toml").write_text("[functions.Typo]\ntimeout = 5\n")
    with pytest.raises(LambdaFreezeError, match=r"\[functions\.Typo\] has no code_dir and names no function"):
        config(project, "--config", str(project / "lf.toml"))

"""SAM templates in the shapes ``sam init`` produces: the FunctionConfigs read from them, the warnings naming what is
not honoured, the errors naming resource and field, and ``lambda-freeze serve --template`` called through boto3."""

from __future__ import annotations

import json
import logging
import signal
import subprocess
from pathlib import Path

import pytest
import requests
from test_cli import Serve, command

from conftest import lambda_client, require
from emulator.config import FunctionConfig, sam
from emulator.config.http_routes import Route
from emulator.config.sam import functions_from_template
from emulator.engine import node_ric
from emulator.errors import ConfigError

pytestmark = pytest.mark.timeout(60)

TEMPLATES = Path(__file__).parent / "templates"
HELLO_PYTHON = TEMPLATES / "hello-python/template.yaml"
HELLO_NODE = TEMPLATES / "hello-node/template.yaml"
PARAMETERS = TEMPLATES / "parameters/template.yaml"


@pytest.fixture(autouse=True)
def x86_64_host(monkeypatch: pytest.MonkeyPatch) -> None:
    """The templates say x86_64; the Architectures warning depends on the host, so the tests fix it."""
    monkeypatch.setattr(sam.platform, "machine", lambda: "x86_64")


def warnings(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name == "lambda_freeze.sam" and r.levelno == logging.WARNING]


def write(directory: Path, template: str, *code_dirs: str) -> Path:
    for code_dir in code_dirs:
        (directory / code_dir).mkdir(parents=True, exist_ok=True)
    path = directory / "template.yaml"
    path.write_text(template)
    return path


# ------------------------------------------------------------------------------------------ sam init shapes
def test_hello_world_python(caplog):
    (function,) = functions_from_template(HELLO_PYTHON)
    assert function == FunctionConfig(
        name="HelloWorldFunction",
        code_dir=(TEMPLATES / "hello-python/hello_world").resolve(),
        handler="app.lambda_handler",
        runtime="python3.11",
        timeout_s=3.0,  # from Globals.Function
        routes=(Route(kind="rest", method="GET", path="/hello"),),  # served by the HTTP front door
    )
    assert warnings(caplog) == []


def test_hello_world_node(caplog):
    (function,) = functions_from_template(HELLO_NODE)
    assert function == FunctionConfig(
        name="HelloWorldFunction",
        code_dir=(TEMPLATES / "hello-node/hello-world").resolve(),
        handler="app.lambdaHandler",
        runtime="nodejs20.x",
        timeout_s=3.0,
        routes=(Route(kind="rest", method="GET", path="/hello"),),
    )
    assert warnings(caplog) == []


def test_parameters_refs_conditions_and_globals(caplog):
    orders, reports, plain = functions_from_template(PARAMETERS)
    src = (TEMPLATES / "parameters/src").resolve()
    assert orders == FunctionConfig(
        name="OrdersFunction",  # FunctionName is a !Sub, not a literal
        code_dir=src,
        handler="app.handler",
        runtime="python3.11",
        timeout_s=10.0,  # !If [IsProd, 30, 10] with Stage's default, dev
        memory_mb=256,  # !Ref MemoryParam
        env={
            "STAGE": "local",  # the function's value wins over Globals
            "LOG_LEVEL": "DEBUG",  # !FindInMap with !Ref Stage, from Globals
            "REGION_NAME": "us-east-1",  # !Sub of a pseudo parameter, from Globals
            "TABLE_NAME": "orders",
            "TABLE_LABEL": "orders-dev",
            "ESCAPED": "${NotAVariable}",
            "FEATURE_ON": "true",
            "RETRIES": "3",
            "TABLE_ARN": "arn:aws:dynamodb:us-east-1:000000000000:table/OrdersTable",  # as the service names it
        },
        layers=((TEMPLATES / "parameters/layer").resolve(),),  # from Globals
    )
    assert reports == FunctionConfig(
        name="reports",
        code_dir=(TEMPLATES / "parameters/reports").resolve(),
        handler="app.handler",
        runtime="python3.11",
        timeout_s=60.0,
        env={"STAGE": "dev", "LOG_LEVEL": "DEBUG", "REGION_NAME": "us-east-1"},  # Globals alone
        reserved_concurrency=2,
        max_retry_attempts=1,
        max_event_age_s=120.0,
        layers=((TEMPLATES / "parameters/layer").resolve(),),
    )
    assert plain == FunctionConfig(  # AWS::Lambda::Function: no Globals
        name="PlainFunction",
        code_dir=src,
        handler="app.handler",
        runtime="python3.12",
        memory_mb=512,
        env={"KIND": "plain"},
    )
    where = f"{PARAMETERS}: Resources"
    globals_ = " (from Globals.Function)"
    assert warnings(caplog) == [
        f"{where}.OrdersFunction.Properties.Tracing{globals_} is not honoured: X-Ray is not emulated",
        f"{where}.OrdersFunction.Properties.Policies is not honoured: IAM is not emulated: the function gets "
        "placeholder credentials",
        f"{where}.OrdersFunction.Properties.FunctionName is not honoured: !Sub ${{Stage}}-orders is not a literal "
        "name; served as OrdersFunction",
        f"{where}.OrdersFunction.Properties.Environment.Variables.API_KEY is not honoured: !Ref ApiKey: the "
        "parameter has no Default; the variable is not set",
        f"{where}.ReportsFunction.Properties.Tracing{globals_} is not honoured: X-Ray is not emulated",
        f"{where}.ReportsFunction.Properties.EventInvokeConfig.DestinationConfig is not honoured: destinations "
        "are not emulated: failures are recorded by the emulator",
        f"{where}.PlainFunction.Properties.Role is not honoured: IAM is not emulated: the function gets "
        "placeholder credentials",
        f"{where}.InlineFunction (AWS::Lambda::Function) is not served: Code is inline code (ZipFile); "
        "lambda-freeze serves a local code directory (Code: ./dir)",
        f"{PARAMETERS}: resources not created locally (functions reach them only where they exist): "
        "OrdersTable (AWS::Serverless::SimpleTable), PlainRole (AWS::IAM::Role)",
    ]


def test_json_template_and_globals_lists(tmp_path, caplog):
    (tmp_path / "code").mkdir()
    path = tmp_path / "template.json"
    path.write_text(
        json.dumps(
            {
                "Transform": "AWS::Serverless-2016-10-31",
                "Globals": {"Function": {"MemorySize": 512, "Environment": {"Variables": {"A": "global", "B": "b"}}}},
                "Resources": {
                    "Fn": {
                        "Type": "AWS::Serverless::Function",
                        "Properties": {
                            "CodeUri": "code",
                            "Handler": "app.handler",
                            "Runtime": "python3.11",
                            "Environment": {"Variables": {"A": {"Fn::Join": ["-", ["x", {"Ref": "AWS::Region"}]]}}},
                            "Architectures": ["arm64"],
                        },
                    }
                },
            }
        )
    )
    (function,) = functions_from_template(path)
    assert function.memory_mb == 512
    assert dict(function.env) == {"A": "x-us-east-1", "B": "b"}
    assert warnings(caplog) == [
        f"{path}: Resources.Fn.Properties.Architectures is not honoured: ['arm64']: the function runs on this "
        "machine's x86_64"
    ]


def test_any_short_form_tag_parses(tmp_path, caplog):
    path = write(
        tmp_path,
        """
Resources:
  Fn:
    Type: AWS::Serverless::Function
    Condition: IsEnabled
    Properties:
      CodeUri: code/
      Handler: app.handler
      Runtime: python3.12
      Environment:
        Variables:
          ENCODED: !Base64 "text"
          IMPORTED: !ImportValue shared-vpc-id
          KEPT: !Select [1, [a, b, c]]
          MISSING: !Ref AWS::NoValue
Outputs:
  Cidr:
    Value: !Cidr [!GetAtt Vpc.CidrBlock, 6, 5]
""",
        "code",
    )
    (function,) = functions_from_template(path)
    assert dict(function.env) == {"KEPT": "b"}
    assert warnings(caplog) == [
        f"{path}: Resources.Fn: Condition IsEnabled is not evaluated; the function is served",
        f"{path}: Resources.Fn.Properties.Environment.Variables.ENCODED is not honoured: !Base64 text cannot be "
        "evaluated without a deployed stack; the variable is not set",
        f"{path}: Resources.Fn.Properties.Environment.Variables.IMPORTED is not honoured: !ImportValue "
        "shared-vpc-id cannot be evaluated without a deployed stack; the variable is not set",
    ]


# ------------------------------------------------------------------------------------------ what is skipped
def test_functions_that_cannot_be_served_are_named_and_skipped(tmp_path, caplog):
    path = write(
        tmp_path,
        """
Resources:
  Served:
    Type: AWS::Serverless::Function
    Properties: {CodeUri: code, Handler: app.handler, Runtime: python3.11, SnapStart: {ApplyOn: PublishedVersions}}
  Image:
    Type: AWS::Serverless::Function
    Properties: {PackageType: Image, ImageUri: repo/fn:latest}
  OldRuntime:
    Type: AWS::Serverless::Function
    Properties: {CodeUri: code, Handler: app.handler, Runtime: python3.8}
  InS3:
    Type: AWS::Serverless::Function
    Properties: {CodeUri: s3://bucket/key.zip, Handler: app.handler, Runtime: python3.11}
  Inline:
    Type: AWS::Serverless::Function
    Properties: {InlineCode: "def handler(e, c): pass", Handler: index.handler, Runtime: python3.11}
""",
        "code",
    )
    (served,) = functions_from_template(path)
    assert served.name == "Served"
    where = f"{path}: Resources"
    assert warnings(caplog) == [
        f"{where}.Served.Properties.SnapStart is not honoured: SnapStart is not emulated",
        f"{where}.Image (AWS::Serverless::Function) is not served: PackageType Image: container image functions "
        "are not supported; serve the code directory",
        f"{where}.OldRuntime (AWS::Serverless::Function) is not served: Runtime python3.8 is not supported here; "
        f"supported: {', '.join(sam.RUNTIMES)}",
        f"{where}.InS3 (AWS::Serverless::Function) is not served: CodeUri s3://bucket/key.zip is code in S3; "
        "lambda-freeze serves a local code directory",
        f"{where}.Inline (AWS::Serverless::Function) is not served: InlineCode: inline code is not served; put it "
        "in a directory named by CodeUri",
    ]


def test_build_method_points_at_sam_build(tmp_path, caplog):
    path = write(
        tmp_path,
        """
Resources:
  Ts:
    Type: AWS::Serverless::Function
    Properties: {CodeUri: code, Handler: app.handler, Runtime: nodejs20.x}
    Metadata:
      BuildMethod: esbuild
""",
        "code",
    )
    functions_from_template(path)
    assert warnings(caplog) == [
        f"{path}: Resources.Ts: Metadata.BuildMethod esbuild: the code is served as it is in the code directory, "
        "unbuilt; run `sam build` and serve .aws-sam/build/template.yaml to serve the built code"
    ]


# ------------------------------------------------------------------------------------------------ errors
FUNCTION = "Resources:\n  Fn:\n    Type: AWS::Serverless::Function\n    Properties:\n"


@pytest.mark.parametrize(
    ("template", "message"),
    [
        ("Description: nothing\n", "the template has no Resources"),
        (
            "Resources:\n  T:\n    Type: AWS::DynamoDB::Table\n",
            "no function to serve: no AWS::Serverless::Function or AWS::Lambda::Function with local code",
        ),
        (
            FUNCTION + "      {CodeUri: code, Handler: a.b, Runtime: java21}\n",
            "no function to serve: no AWS::Serverless::Function or AWS::Lambda::Function with local code (Fn cannot "
            "be served: see the warnings)",
        ),
        (
            FUNCTION + "      {CodeUri: nowhere/, Handler: a.b, Runtime: python3.11}\n",
            "Resources.Fn.Properties.CodeUri: nowhere/: the code directory",
        ),
        (
            FUNCTION + "      {CodeUri: code/app.zip, Handler: a.b, Runtime: python3.11}\n",
            "Resources.Fn.Properties.CodeUri: code/app.zip is a file",
        ),
        (FUNCTION + "      {CodeUri: code, Handler: a.b}\n", "Resources.Fn.Properties.Runtime: required"),
        (
            "Parameters:\n  H: {Type: String}\n"
            + FUNCTION
            + "      {CodeUri: code, Handler: !Ref H, Runtime: python3.11}\n",
            "Resources.Fn.Properties.Handler: !Ref H: the parameter has no Default",
        ),
        (
            FUNCTION + "      {CodeUri: code, Handler: a.b, Runtime: python3.11, Timeout: soon}\n",
            "Resources.Fn.Properties.Timeout: expected a number, not 'soon'",
        ),
        (
            FUNCTION + "      {CodeUri: code, Handler: a.b, Runtime: python3.11, MemorySize: 64}\n",
            "Resources.Fn: function Fn: memory must be 128-10240 MB, not 64",
        ),
        (
            FUNCTION + "      CodeUri: code\n      Handler: a.b\n      Runtime: python3.11\n"
            "      Environment: {Variables: {AWS_REGION: eu-west-1}}\n",
            "Resources.Fn: function Fn: AWS_REGION is reserved by Lambda",
        ),
        (
            "Resources:\n  Fn:\n    Type: AWS::Lambda::Function\n    Properties: {Handler: a.b, Runtime: python3.11}\n",
            "Resources.Fn.Properties.Code: required",
        ),
        ("Resources:\n  Fn: [\n", "template.yaml:3: not valid YAML"),
    ],
)
def test_errors_name_the_resource_and_field(tmp_path, template, message):
    (tmp_path / "code").mkdir()
    (tmp_path / "code/app.zip").write_bytes(b"PK")
    path = write(tmp_path, template)
    with pytest.raises(ConfigError) as raised:
        functions_from_template(path)
    assert message in raised.value.message
    assert str(path) in raised.value.message


def test_missing_template(tmp_path):
    with pytest.raises(ConfigError, match=r"SAM template .*nope.yaml does not exist"):
        functions_from_template(tmp_path / "nope.yaml")


# ---------------------------------------------------------------------------------------- end to end
def test_serve_template_python():
    serve = Serve("--template", str(HELLO_PYTHON), "--api-port", "0")
    try:
        response = lambda_client(serve.url).invoke(FunctionName="HelloWorldFunction", Payload=b"{}")
        payload = json.loads(response["Payload"].read())
        assert "FunctionError" not in response, payload
        assert payload["statusCode"] == 200
        assert json.loads(payload["body"]) == {"message": "hello world", "function": "HelloWorldFunction"}
        # The Api event is a route of the front door, printed at start: GET /hello answers as API Gateway does.
        front_door = serve.proc.stderr.readline()  # type: ignore[union-attr]
        assert "HTTP front door on http://127.0.0.1:" in front_door
        api_url = front_door.rsplit(" ", 1)[1].strip()
        answer = requests.get(f"{api_url}/hello", timeout=30)
        assert answer.status_code == 200
        assert answer.json() == {"message": "hello world", "function": "HelloWorldFunction"}
        assert "Events is not honoured" not in "".join(serve.stderr)
    finally:
        assert serve.stop(signal.SIGTERM) == 0


def test_serve_template_node():
    try:
        node_ric.command("nodejs20.x", TEMPLATES / "hello-node/hello-world", "app.lambdaHandler")
        problem = None
    except ConfigError as exc:
        problem = exc.message
    require(problem is None, str(problem))  # the message names `lambda-freeze install-node-ric`
    serve = Serve("--template", str(HELLO_NODE))
    try:
        response = lambda_client(serve.url).invoke(FunctionName="HelloWorldFunction", Payload=b"{}")
        payload = json.loads(response["Payload"].read())
        assert "FunctionError" not in response, payload
        assert json.loads(payload["body"]) == {"message": "hello world", "function": "HelloWorldFunction"}
    finally:
        assert serve.stop(signal.SIGTERM) == 0


def test_serve_template_error_exits_2(tmp_path):
    done = subprocess.run(
        [*command(), "serve", "--port", "0", "--template", str(tmp_path / "missing.yaml")],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert done.returncode == 2
    assert "missing.yaml does not exist" in done.stderr

"""SAM templates as the front door reads them: Api events (with an AWS::Serverless::Api's stage and binary media
types, and Globals.Api), HttpApi events ($default, payload 1.0), FunctionUrlConfig, and other event types that
must not stop the template from loading."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from emulator.config.http_routes import Cors, FunctionUrl, Route
from emulator.config.sam import functions_from_template
from emulator.errors import ConfigError

TEMPLATE = """
Transform: AWS::Serverless-2016-10-31
Parameters:
  Stage: {Type: String, Default: dev}
Globals:
  Api:
    BinaryMediaTypes: ["image~1png"]
Resources:
  MyApi:
    Type: AWS::Serverless::Api
    Properties:
      StageName: !Ref Stage
      BinaryMediaTypes: ["application~1octet-stream"]
  Queue:
    Type: AWS::SQS::Queue
  Fn:
    Type: AWS::Serverless::Function
    Properties:
      CodeUri: src
      Handler: app.handler
      Runtime: python3.11
      FunctionUrlConfig:
        AuthType: AWS_IAM
        InvokeMode: RESPONSE_STREAM
        Cors: {AllowOrigins: ["https://app.example"], AllowMethods: [GET], MaxAge: 60}
      Events:
        Named: {Type: Api, Properties: {Path: "/a/{id}", Method: get, RestApiId: !Ref MyApi}}
        Implicit: {Type: Api, Properties: {Path: "/{proxy+}", Method: any}}
        Default: {Type: HttpApi}
        Old: {Type: HttpApi, Properties: {Path: /v1, Method: post, PayloadFormatVersion: "1.0"}}
        Messages: {Type: SQS, Properties: {Queue: !GetAtt Queue.Arn}}
"""


def test_http_events_and_function_url(tmp_path: Path) -> None:
    (tmp_path / "src").mkdir()
    (tmp_path / "template.yaml").write_text(TEMPLATE)
    (function,) = functions_from_template(tmp_path / "template.yaml")
    assert function.routes == (
        Route("rest", "GET", "/a/{id}", stage="dev", binary_media_types=("image~1png", "application~1octet-stream")),
        Route("rest", "ANY", "/{proxy+}", stage="Prod", binary_media_types=("image~1png",)),
        Route("http", "ANY", "$default"),
        Route("http", "POST", "/v1", payload_version="1.0"),
    )
    assert function.url == FunctionUrl(
        auth_type="AWS_IAM",
        invoke_mode="RESPONSE_STREAM",
        cors=Cors(allow_origins=("https://app.example",), allow_methods=("GET",), max_age_s=60),
    )


def test_a_bad_route_names_its_event(tmp_path: Path) -> None:
    (tmp_path / "src").mkdir()
    (tmp_path / "template.yaml").write_text(TEMPLATE.replace("Path: /v1, Method: post", "Path: v1, Method: post"))
    with pytest.raises(ConfigError, match=r"Resources\.Fn\.Properties\.Events\.Old: route 'v1'"):
        functions_from_template(tmp_path / "template.yaml")


def test_an_api_whose_routes_are_served_is_not_listed_as_missing(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    (tmp_path / "src").mkdir()
    template = TEMPLATE.replace(
        "  Queue:\n",
        "  Unused:\n    Type: AWS::Serverless::Api\n    Properties: {StageName: x}\n"
        "  MyHttpApi:\n    Type: AWS::Serverless::HttpApi\n  Queue:\n",
    ).replace("Default: {Type: HttpApi}", "Default: {Type: HttpApi, Properties: {ApiId: !Ref MyHttpApi}}")
    (tmp_path / "template.yaml").write_text(template)
    with caplog.at_level(logging.WARNING, logger="lambda_freeze.sam"):
        (function,) = functions_from_template(tmp_path / "template.yaml")
    assert Route("http", "ANY", "$default") in function.routes
    missing = [r.getMessage() for r in caplog.records if "not created locally" in r.getMessage()]
    # MyApi and MyHttpApi serve the function's routes; an API no event names serves none, and stays listed (the queue
    # is created locally, by the embedded SQS server)
    assert missing == [
        f"{tmp_path / 'template.yaml'}: resources not created locally (functions reach them only where they "
        "exist): Unused (AWS::Serverless::Api)"
    ]

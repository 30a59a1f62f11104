"""``lambda-freeze generate-event``: each service's event, as the command prints it, is accepted by the parser of
a library users deploy (Powertools for AWS Lambda's pydantic models and event data classes), and carries the
options given."""

from __future__ import annotations

import json
from typing import Any

import pytest
from aws_lambda_powertools.utilities.data_classes import (
    APIGatewayProxyEvent,
    APIGatewayProxyEventV2,
    DynamoDBStreamEvent,
    EventBridgeEvent,
    LambdaFunctionUrlEvent,
    S3Event,
    SNSEvent,
    SQSEvent,
)
from aws_lambda_powertools.utilities.parser import parse
from aws_lambda_powertools.utilities.parser.models import (
    APIGatewayProxyEventModel,
    APIGatewayProxyEventV2Model,
    DynamoDBStreamModel,
    EventBridgeModel,
    LambdaFunctionUrlModel,
    S3Model,
    SnsModel,
    SqsModel,
)

from emulator.cli import main
from emulator.sources.events import registry
from emulator.sources.events.dynamodb import attribute_value


def generate(capsys: pytest.CaptureFixture[str], *args: str) -> Any:
    assert main(["generate-event", *args]) == 0
    return json.loads(capsys.readouterr().out)


def test_the_command_offers_exactly_the_services_with_a_builder(capsys):
    with pytest.raises(SystemExit):
        main(["generate-event", "--help"])
    out = capsys.readouterr().out
    for service in registry.available():
        assert service in out
    assert {"s3", "sns", "dynamodb", "apigateway", "http-api", "function-url", "sqs", "schedule"} <= set(
        registry.available()
    )
    assert set(registry.available()) <= set(registry.BUILDERS)


def test_s3(capsys):
    event = generate(capsys, "s3", "--bucket", "uploads", "--key", "in/my photo.jpg", "--size", "2048")
    parsed = parse(event=event, model=S3Model)
    record = parsed.Records[0]
    assert record.s3.bucket.name == "uploads" and record.s3.object.size == 2048
    assert record.eventName == "ObjectCreated:Put"
    s3 = S3Event(event)
    assert s3.object_key == "in/my photo.jpg"  # the key is URL-encoded as S3 sends it, and decodes back
    assert event["Records"][0]["s3"]["object"]["key"] == "in/my+photo.jpg"


def test_s3_removal_has_no_size(capsys):
    event = generate(capsys, "s3", "--event-name", "ObjectRemoved:Delete")
    record = parse(event=event, model=S3Model).Records[0]
    assert record.eventName == "ObjectRemoved:Delete" and record.s3.object.size is None


def test_sns(capsys):
    event = generate(capsys, "sns", "--message", '{"order": 7}', "--topic", "orders", "--attributes", '{"kind": "new"}')
    parsed = parse(event=event, model=SnsModel)
    sns = parsed.Records[0].Sns
    assert sns.Message == '{"order": 7}' and str(sns.TopicArn).endswith(":orders")
    assert sns.MessageAttributes["kind"].Value == "new"
    assert SNSEvent(event).sns_message == '{"order": 7}'


@pytest.mark.parametrize(
    ("event_name", "has_new", "has_old"), [("INSERT", True, False), ("MODIFY", True, True), ("REMOVE", False, True)]
)
def test_dynamodb(capsys, event_name, has_new, has_old):
    event = generate(
        capsys, "dynamodb", "--keys", '{"pk": "order#7"}', "--new-image", '{"pk": "order#7", "n": 3, "tags": ["a"]}',
        "--event-name", event_name, "--table", "orders",
    )  # fmt: skip
    parse(event=event, model=DynamoDBStreamModel)
    record = next(iter(DynamoDBStreamEvent(event).records))
    assert record.event_name is not None and record.event_name.name == event_name
    assert record.dynamodb is not None and record.dynamodb.keys == {"pk": "order#7"}
    assert (record.dynamodb.new_image is not None and record.dynamodb.new_image != {}) == has_new
    if has_new:
        assert record.dynamodb.new_image == {"pk": "order#7", "n": 3, "tags": ["a"]}
    assert bool(record.dynamodb.old_image) == has_old
    assert ":table/orders/stream/" in event["Records"][0]["eventSourceARN"]


def test_dynamodb_attribute_values():
    assert attribute_value({"a": [1, None, True, b"x"]}) == {
        "M": {"a": {"L": [{"N": "1"}, {"NULL": True}, {"BOOL": True}, {"B": "eA=="}]}}
    }


def test_bad_options_are_errors_not_tracebacks(capsys):
    assert main(["generate-event", "dynamodb", "--event-name", "UPSERT"]) == 2
    assert "event name 'UPSERT': one of INSERT, MODIFY, REMOVE" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["generate-event", "sns", "--attributes", "{nope"])
    assert "not JSON" in capsys.readouterr().err


def test_apigateway_rest_payload_1(capsys):
    event = generate(
        capsys, "apigateway", "--method", "post", "--path", "/orders/7", "--query", "tag=a&tag=b&page=2",
        "--headers", '{"X-Trace": "t1"}', "--body", '{"n": 3}', "--resource", "/orders/{id}",
        "--path-parameters", '{"id": "7"}', "--stage", "dev",
    )  # fmt: skip
    parsed = parse(event=event, model=APIGatewayProxyEventModel)
    assert parsed.httpMethod == "POST" and parsed.resource == "/orders/{id}" and parsed.path == "/orders/7"
    assert parsed.requestContext.stage == "dev" and parsed.requestContext.path == "/dev/orders/7"
    rest = APIGatewayProxyEvent(event)
    assert rest.path_parameters == {"id": "7"}
    assert rest.query_string_parameters == {"tag": "b", "page": "2"}  # the last value of a repeated name
    assert rest.multi_value_query_string_parameters == {"tag": ["a", "b"], "page": ["2"]}
    assert rest.headers["x-trace"] == "t1" and rest.headers["content-type"] == "application/json"
    assert rest.json_body == {"n": 3} and not rest.is_base64_encoded


def test_apigateway_defaults_route_the_path_itself(capsys):
    event = generate(capsys, "apigateway")
    parse(event=event, model=APIGatewayProxyEventModel)
    rest = APIGatewayProxyEvent(event)
    assert rest.http_method == "GET" and rest.resource == rest.path == "/hello"
    assert rest.body is None
    # API Gateway sends null, not {}, for what the request did not have
    assert event["pathParameters"] is None and event["queryStringParameters"] is None


def test_http_api_payload_2(capsys):
    event = generate(
        capsys, "http-api", "--method", "PUT", "--path", "/orders/7", "--query", "tag=a&tag=b",
        "--body", "plain words", "--headers", '{"Content-Type": "text/plain", "Cookie": "a=1; b=2"}',
        "--route-key", "PUT /orders/{id}", "--path-parameters", '{"id": "7"}',
        "--stage-variables", '{"env": "test"}',
    )  # fmt: skip
    parsed = parse(event=event, model=APIGatewayProxyEventV2Model)
    assert parsed.routeKey == "PUT /orders/{id}" and parsed.requestContext.http.method == "PUT"
    v2 = APIGatewayProxyEventV2(event)
    assert v2.raw_path == "/orders/7" and v2.path_parameters == {"id": "7"}
    assert v2.query_string_parameters == {"tag": "a,b"}  # a repeated name's values joined, as 2.0 does
    assert v2.cookies == ["a=1", "b=2"] and "cookie" not in v2.headers
    assert v2.decoded_body == "plain words" and not v2.is_base64_encoded
    assert v2.stage_variables == {"env": "test"} and v2.request_context.stage == "$default"


def test_http_api_binary_body_is_base64(capsys):
    event = generate(capsys, "http-api", "--body", "raw", "--headers", '{"content-type": "application/octet-stream"}')
    v2 = APIGatewayProxyEventV2(event)
    assert v2.is_base64_encoded and v2.decoded_body == "raw"
    assert v2.route_key == "GET /hello"


def test_function_url(capsys):
    event = generate(
        capsys, "function-url", "--function-name", "Orders", "--method", "DELETE", "--path", "/items/3",
        "--query", "force=1", "--iam-caller", "AKIDEXAMPLE",
    )  # fmt: skip
    parsed = parse(event=event, model=LambdaFunctionUrlModel)
    assert parsed.routeKey == "$default" and parsed.requestContext.http.method == "DELETE"
    url = LambdaFunctionUrlEvent(event)
    assert url.raw_path == "/items/3" and url.query_string_parameters == {"force": "1"}
    assert url.request_context.domain_name == "orders.lambda-url.localhost"
    assert url.request_context.authorizer.iam.access_key == "AKIDEXAMPLE"


def test_sqs(capsys):
    event = generate(
        capsys, "sqs", "--body", '{"order": 7}', "--queue", "orders", "--count", "3", "--attributes", '{"kind": "new"}'
    )
    parsed = parse(event=event, model=SqsModel)
    assert len(parsed.Records) == 3
    assert len({record.messageId for record in parsed.Records}) == 3  # each message its own id
    assert parsed.Records[0].messageAttributes["kind"].stringValue == "new"
    records = list(SQSEvent(event).records)
    assert all(r.json_body == {"order": 7} and r.queue_url.endswith("/orders") for r in records)
    assert records[0].attributes.approximate_receive_count == "1"


def test_schedule(capsys):
    event = generate(capsys, "schedule", "--rule", "nightly", "--detail", '{"job": "cleanup"}')
    parsed = parse(event=event, model=EventBridgeModel)
    assert parsed.detail_type == "Scheduled Event" and parsed.source == "aws.events"
    bridge = EventBridgeEvent(event)
    assert bridge.resources[0].endswith(":rule/nightly") and bridge.detail == {"job": "cleanup"}


def test_bad_http_and_sqs_options_are_errors(capsys):
    assert main(["generate-event", "sqs", "--count", "0"]) == 2
    assert "count 0: an SQS batch has 1 to 10000 messages" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["generate-event", "apigateway", "--headers", "{nope"])
    assert "not JSON" in capsys.readouterr().err

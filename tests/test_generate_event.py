"""``lambda-freeze generate-event``: each service's event, as the command prints it, is accepted by the parser of
a library users deploy (Powertools for AWS Lambda's pydantic models and event data classes), and carries the
options given."""

from __future__ import annotations

import json
from typing import Any

import pytest
from aws_lambda_powertools.utilities.data_classes import DynamoDBStreamEvent, S3Event, SNSEvent
from aws_lambda_powertools.utilities.parser import parse
from aws_lambda_powertools.utilities.parser.models import DynamoDBStreamModel, S3Model, SnsModel

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
    assert {"s3", "sns", "dynamodb"} <= set(registry.available())
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

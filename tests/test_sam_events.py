"""SAM templates beyond their functions: SQS queues (VisibilityTimeout, RedrivePolicy, FifoQueue), S3 buckets with
queue notifications, and the SQS, Schedule and ScheduleV2 events of functions; served end to end."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pytest
from sqs_support import moto_installed

from conftest import FUNCTIONS, require
from emulator.config.sam import functions_from_template
from emulator.config.sam_events import events_from_template
from emulator.config.settings import ServerConfig
from emulator.testing import CollectingSink, EmulatorThread

pytestmark = pytest.mark.timeout(60)

TEMPLATE = """
AWSTemplateFormatVersion: "2010-09-09"
Transform: AWS::Serverless-2016-10-31
Resources:
  DeadLetters:
    Type: AWS::SQS::Queue
  Orders:
    Type: AWS::SQS::Queue
    Properties:
      QueueName: orders
      VisibilityTimeout: 20
      RedrivePolicy:
        deadLetterTargetArn: !GetAtt DeadLetters.Arn
        maxReceiveCount: 4
  Ordered:
    Type: AWS::SQS::Queue
    Properties:
      FifoQueue: true
      ContentBasedDeduplication: true
  Uploads:
    Type: AWS::S3::Bucket
    Properties:
      NotificationConfiguration:
        QueueConfigurations:
          - Event: s3:ObjectCreated:*
            Queue: !GetAtt Orders.Arn
  Consumer:
    Type: AWS::Serverless::Function
    Properties:
      CodeUri: {code}
      Handler: app.handler
      Runtime: python3.11
      Timeout: 5
      Environment:
        Variables:
          ORDERS_ARN: !GetAtt Orders.Arn
      Events:
        FromOrders:
          Type: SQS
          Properties:
            Queue: !GetAtt Orders.Arn
            BatchSize: 5
            FunctionResponseTypes: [ReportBatchItemFailures]
            ScalingConfig:
              MaximumConcurrency: 3
        Nightly:
          Type: Schedule
          Properties:
            Schedule: cron(0 3 * * ? *)
            Input: '{{"job": "nightly"}}'
        Paris:
          Type: ScheduleV2
          Properties:
            ScheduleExpression: cron(0 9 ? * MON-FRI *)
            ScheduleExpressionTimezone: Europe/Paris
            State: DISABLED
        Topic:
          Type: SNS
          Properties:
            Topic: arn:aws:sns:us-east-1:000000000000:orders
"""


def write(tmp_path: Path) -> Path:
    path = tmp_path / "template.yaml"
    path.write_text(TEMPLATE.format(code=FUNCTIONS / "python" / "sqs_recorder"))
    return path


def test_queues_buckets_and_events_are_read(tmp_path, caplog):
    with caplog.at_level(logging.WARNING, logger="lambda_freeze.sam"):
        functions_from_template(write(tmp_path))
    warnings = "\n".join(caplog.messages)
    assert "Topic (SNS)" in warnings and "FromOrders" not in warnings and "Nightly" not in warnings
    assert "AWS::SQS::Queue" not in warnings and "AWS::S3::Bucket" not in warnings
    events = events_from_template(write(tmp_path))
    queues = {q.name: q for q in events.queues}
    assert set(queues) == {"DeadLetters", "orders", "Ordered.fifo"}
    assert queues["orders"].visibility_timeout_s == 20
    assert (queues["orders"].dead_letter_queue, queues["orders"].max_receive_count) == ("DeadLetters", 4)
    assert queues["Ordered.fifo"].fifo and queues["Ordered.fifo"].content_based_deduplication
    (bucket,) = events.buckets
    assert bucket.name == "uploads" and bucket.notifications[0].queue == "orders"
    (mapping,) = events.sqs_mappings
    assert (mapping.function, mapping.queue, mapping.batch_size, mapping.max_concurrency) == (
        "Consumer",
        "orders",
        5,
        3,
    )
    assert mapping.report_batch_item_failures
    nightly, paris = events.schedules
    assert (nightly.name, nightly.expression, nightly.input, nightly.enabled) == (
        "Consumer.Nightly",
        "cron(0 3 * * ? *)",
        '{"job": "nightly"}',
        True,
    )
    assert (paris.name, paris.timezone, paris.enabled, paris.scheduler) == (
        "Consumer.Paris",
        "Europe/Paris",
        False,
        True,
    )


def test_a_template_runs_end_to_end(tmp_path):
    require(moto_installed(), "moto[server] (pip install 'lambda-freeze[aws]') for the embedded SQS endpoint")
    path = write(tmp_path)
    (tmp_path / "events").mkdir()
    (function,) = functions_from_template(path)
    orders_arn = function.env["ORDERS_ARN"]  # what the function is told its queue is
    env = {**function.env, "RECORD_DIR": str(tmp_path / "events")}
    function = function.__class__(**{**function.__dict__, "env": env})
    config = ServerConfig(port=0, functions=(function,), events=events_from_template(path))
    with EmulatorThread(config, sink=CollectingSink()) as emu:
        assert emu.emulator is not None and emu.emulator.events.mappings is not None
        (mapping,) = emu.emulator.events.mappings.mappings.values()
        assert mapping.queue.arn == orders_arn  # the service's ARN is the template's (the same account)
        s3 = emu.emulator.events.endpoint.client("s3")  # type: ignore[union-attr]
        s3.put_object(Bucket="uploads", Key="a.txt", Body=b"a")  # S3 → orders → the mapping → Consumer
        emu.wait_for(lambda e: mapping.counts["deleted"] >= 2)  # S3's s3:TestEvent, then the object's event
        bodies = [p.read_text() for p in sorted((tmp_path / "events").iterdir())]
        assert any("s3:TestEvent" in body for body in bodies)
        assert any("ObjectCreated:Put" in body and "a.txt" in body for body in bodies)
        assert {json.loads(body)["Records"][0]["eventSourceARN"] for body in bodies} == {orders_arn}
        assert [s["name"] for s in emu.emulator.events.describe_schedules()] == ["Consumer.Nightly", "Consumer.Paris"]

"""Environment variables that !Ref / !GetAtt a resource lambda-freeze knows (a function, an SQS queue, an S3 bucket,
a DynamoDB table) get what the service would give, in the served account and region; any other resource's variable
is left out with a warning that names it."""

from __future__ import annotations

import logging
from pathlib import Path

from emulator.config.resource_values import resource_value
from emulator.config.sam import functions_from_template

TEMPLATE = """\
Transform: AWS::Serverless-2016-10-31
Parameters:
  Stage: {Type: String, Default: dev}
Resources:
  Orders:
    Type: AWS::SQS::Queue
    Properties: {QueueName: !Sub "${Stage}-orders"}
  Events:
    Type: AWS::SQS::Queue
    Properties: {FifoQueue: true}
  Uploads:
    Type: AWS::S3::Bucket
  Table:
    Type: AWS::DynamoDB::Table
    Properties: {TableName: orders-table}
  Topic:
    Type: AWS::SNS::Topic
  Worker:
    Type: AWS::Serverless::Function
    Properties: {CodeUri: src, Handler: app.handler, Runtime: python3.11, FunctionName: worker-fn}
  Api:
    Type: AWS::Serverless::Function
    Properties:
      CodeUri: src
      Handler: app.handler
      Runtime: python3.11
      Environment:
        Variables:
          QUEUE_URL: !Ref Orders
          QUEUE_ARN: !GetAtt Orders.Arn
          QUEUE_NAME: !GetAtt Orders.QueueName
          FIFO_URL: !Ref Events
          BUCKET: !Ref Uploads
          BUCKET_ARN: !GetAtt Uploads.Arn
          TABLE: !Ref Table
          TABLE_ARN: !Sub "${Table.Arn}/index/*"
          WORKER: !Ref Worker
          WORKER_ARN: !GetAtt Worker.Arn
          SELF: !Ref Api
          TOPIC: !Ref Topic
          QUEUE_SIZE: !GetAtt Orders.ApproximateNumberOfMessages
"""


def test_known_resources_resolve_as_the_service_gives_them(tmp_path: Path, caplog):
    (tmp_path / "src").mkdir()
    (tmp_path / "src/app.py").write_text("def handler(event, context):\n    return None\n")
    (tmp_path / "template.yaml").write_text(TEMPLATE)
    with caplog.at_level(logging.WARNING, logger="lambda_freeze.sam"):
        functions = {f.name: f for f in functions_from_template(tmp_path / "template.yaml", {"Stage": "prod"})}
    assert dict(functions["Api"].env) == {
        "QUEUE_URL": "https://sqs.us-east-1.amazonaws.com/000000000000/prod-orders",
        "QUEUE_ARN": "arn:aws:sqs:us-east-1:000000000000:prod-orders",
        "QUEUE_NAME": "prod-orders",
        "FIFO_URL": "https://sqs.us-east-1.amazonaws.com/000000000000/Events.fifo",
        "BUCKET": "uploads",
        "BUCKET_ARN": "arn:aws:s3:::uploads",
        "TABLE": "orders-table",
        "TABLE_ARN": "arn:aws:dynamodb:us-east-1:000000000000:table/orders-table/index/*",
        "WORKER": "worker-fn",
        "WORKER_ARN": "arn:aws:lambda:us-east-1:000000000000:function:worker-fn",
        "SELF": "Api",
    }
    messages = [r.getMessage() for r in caplog.records]
    where = f"{tmp_path / 'template.yaml'}: Resources.Api.Properties.Environment.Variables"
    assert (f"{where}.TOPIC is not honoured: !Ref Topic: a resource (AWS::SNS::Topic) which is not created locally; "
            "the variable is not set") in messages
    assert (f"{where}.QUEUE_SIZE is not honoured: !GetAtt Orders.ApproximateNumberOfMessages: AWS::SQS::Queue has "
            "no attribute ApproximateNumberOfMessages that lambda-freeze knows; the variable is not set") in messages


def test_a_queue_served_on_an_endpoint_has_its_url_there():
    assert resource_value("Jobs", "AWS::SQS::Queue", {}, region="eu-west-1", account="000000000000",
                          sqs_endpoint="http://127.0.0.1:9324/") == "http://127.0.0.1:9324/000000000000/Jobs"
    assert resource_value("Jobs", "AWS::SNS::Topic", {}, region="eu-west-1", account="000000000000") is None

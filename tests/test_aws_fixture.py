"""The lambda_freeze_aws fixture: queues and buckets on the embedded endpoint, a function with an SQS mapping
created through the control-plane API, boto3 clients on the same endpoint, message counts."""

from __future__ import annotations

import json
import time

import pytest
from sqs_support import moto_installed

from conftest import require

pytestmark = pytest.mark.timeout(60)

PARTIAL = "samples/python/sqs_partial_batch/fixed"


def test_a_poison_message_lands_in_the_dead_letter_queue_while_the_others_flow(lambda_freeze_aws, tmp_path):
    require(moto_installed(), "moto[server] (pip install 'lambda-freeze[aws]') for the embedded SQS endpoint")
    aws = lambda_freeze_aws
    aws.create_queue("poison-dlq")
    aws.create_queue("work", visibility_timeout_s=3, dead_letter_queue="poison-dlq", max_receive_count=2)
    fn = aws.function(
        PARTIAL,
        env={"PROCESSED_DIR": str(tmp_path)},
        sqs=[{"queue": "work", "BatchSize": 1, "FunctionResponseTypes": ["ReportBatchItemFailures"]}],
    )
    assert fn.aws is aws
    sqs = aws.client("sqs")
    for n in range(6):
        sqs.send_message(QueueUrl=aws.queue_url("work"), MessageBody=json.dumps({"id": n, "bad": n == 2}))
    fn.wait_for(lambda emu: len(list(tmp_path.iterdir())) == 5)  # the five good ones flow past the poison one
    deadline = time.monotonic() + 30
    while aws.count("poison-dlq") < 1:  # moto moves it on the receive after maxReceiveCount: no event to await
        assert time.monotonic() < deadline, "the poison message did not reach the dead-letter queue"
        time.sleep(0.2)  # wait-ok: the SQS server sends no event
    assert aws.count("poison-dlq") == 1
    assert {int(p.name) for p in tmp_path.iterdir()} == {0, 1, 3, 4, 5}
    assert all(len(p.read_text().split()) == 1 for p in tmp_path.iterdir())
    (moved,) = sqs.receive_message(QueueUrl=aws.queue_url("poison-dlq"))["Messages"]
    assert json.loads(moved["Body"]) == {"id": 2, "bad": True}

"""The embedded SQS endpoint's faster paths (emulator/sources/aws/moto_sqs.py) keep SQS's semantics, through boto3
against the moto child: visibility timeouts and receive counts, the redrive to the dead-letter queue, FIFO message
groups, receipt handles, and concurrent senders, long polls and deletes that neither duplicate nor lose a
message."""

from __future__ import annotations

import asyncio
import json
import threading
import time
from collections import Counter
from collections.abc import Iterator
from importlib.metadata import version
from typing import Any

import pytest
from botocore.exceptions import ClientError
from sqs_support import moto_installed

from conftest import require
from emulator.sources.aws import moto_sqs
from emulator.sources.aws.endpoint import AwsEndpoint

pytestmark = pytest.mark.timeout(60)


@pytest.fixture(scope="module")
def sqs() -> Iterator[Any]:
    require(moto_installed(), "moto[server] (pip install 'lambda-freeze[aws]') for the embedded SQS endpoint")
    endpoint = AwsEndpoint(None)
    asyncio.run(endpoint.start())
    try:
        yield endpoint.client("sqs", max_pool_connections=32)
    finally:
        asyncio.run(endpoint.close())


def new_queue(sqs: Any, name: str, **attributes: str) -> str:
    return str(sqs.create_queue(QueueName=name, Attributes=attributes)["QueueUrl"])


def test_the_installed_moto_is_the_one_the_faster_paths_follow():
    require(moto_installed(), "moto[server] (pip install 'lambda-freeze[aws]') for the embedded SQS endpoint")
    assert version("moto") == moto_sqs.MOTO_VERSION, "moto was bumped: re-read moto_sqs.py against the new version"


def test_another_moto_version_runs_as_released(monkeypatch, capsys):
    require(moto_installed(), "moto[server] (pip install 'lambda-freeze[aws]') for the embedded SQS endpoint")
    import moto
    from moto.sqs.models import SQSBackend

    receive = SQSBackend.receive_message
    monkeypatch.setattr(moto, "__version__", "99.0.0")
    assert moto_sqs.apply() is False
    assert SQSBackend.receive_message is receive  # nothing replaced
    expected = f"moto 99.0.0: the SQS speed-ups follow moto {moto_sqs.MOTO_VERSION} and are not applied"
    assert expected in capsys.readouterr().err


def test_visibility_timeout_receive_count_and_redrive(sqs):
    dlq = new_queue(sqs, "redrive-dlq")
    dlq_arn = sqs.get_queue_attributes(QueueUrl=dlq, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    url = new_queue(
        sqs, "redrive", RedrivePolicy=json.dumps({"deadLetterTargetArn": dlq_arn, "maxReceiveCount": 2})
    )
    sent = sqs.send_message(QueueUrl=url, MessageBody="poison")["MessageId"]

    def receive(**kw: Any) -> list[dict[str, Any]]:
        answer = sqs.receive_message(QueueUrl=url, AttributeNames=["All"], MaxNumberOfMessages=10, **kw)
        return list(answer.get("Messages", []))

    (first,) = receive(VisibilityTimeout=60)
    assert (first["MessageId"], first["Attributes"]["ApproximateReceiveCount"]) == (sent, "1")
    assert receive(WaitTimeSeconds=0) == []  # in flight for 60 s
    sqs.change_message_visibility(QueueUrl=url, ReceiptHandle=first["ReceiptHandle"], VisibilityTimeout=0)
    (second,) = receive(VisibilityTimeout=0)
    assert (second["MessageId"], second["Attributes"]["ApproximateReceiveCount"]) == (sent, "2")
    assert receive(WaitTimeSeconds=0) == []  # received maxReceiveCount times: moved, not delivered again
    (dead,) = sqs.receive_message(QueueUrl=dlq, MaxNumberOfMessages=10).get("Messages", [])
    assert (dead["MessageId"], dead["Body"]) == (sent, "poison")
    counts = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["ApproximateNumberOfMessages"])["Attributes"]
    assert counts == {"ApproximateNumberOfMessages": "0"}


def test_a_fifo_group_with_a_message_in_flight_is_held_until_it_is_deleted(sqs):
    url = new_queue(sqs, "groups.fifo", FifoQueue="true", ContentBasedDeduplication="true")
    for group, body in (("a", "a1"), ("a", "a2"), ("b", "b1")):
        sqs.send_message(QueueUrl=url, MessageBody=body, MessageGroupId=group)
    (a1,) = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=1)["Messages"]
    assert a1["Body"] == "a1"
    (b1,) = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10, WaitTimeSeconds=0)["Messages"]
    assert b1["Body"] == "b1"  # group a waits for a1
    got: list[Any] = []
    long_poll = threading.Thread(
        target=lambda: got.append(sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10, WaitTimeSeconds=10))
    )
    long_poll.start()
    sqs.delete_message(QueueUrl=url, ReceiptHandle=a1["ReceiptHandle"])
    long_poll.join()
    assert [m["Body"] for m in got[0]["Messages"]] == ["a2"]


def test_receipt_handles_old_new_unknown_and_deleted_twice(sqs):
    url = new_queue(sqs, "handles")
    sqs.send_message(QueueUrl=url, MessageBody="x")
    (first,) = sqs.receive_message(QueueUrl=url, VisibilityTimeout=0)["Messages"]
    (again,) = sqs.receive_message(QueueUrl=url, VisibilityTimeout=60)["Messages"]
    assert first["ReceiptHandle"] != again["ReceiptHandle"]
    answer = sqs.delete_message_batch(
        QueueUrl=url,
        Entries=[
            {"Id": "old", "ReceiptHandle": first["ReceiptHandle"]},  # an earlier handle of the message still deletes
            {"Id": "unknown", "ReceiptHandle": "not-a-handle"},
        ],
    )
    assert [s["Id"] for s in answer["Successful"]] == ["old"]
    assert [(f["Id"], f["Code"], f["SenderFault"]) for f in answer["Failed"]] == [
        ("unknown", "ReceiptHandleIsInvalid", True)
    ]
    sqs.delete_message(QueueUrl=url, ReceiptHandle=again["ReceiptHandle"])  # deleted already: accepted
    with pytest.raises(ClientError, match="ReceiptHandleIsInvalid"):
        sqs.delete_message(QueueUrl=url, ReceiptHandle="not-a-handle-either")
    assert sqs.receive_message(QueueUrl=url, WaitTimeSeconds=0).get("Messages", []) == []


def test_concurrent_senders_long_polls_and_deletes_take_each_message_once_and_lose_none(sqs):
    url = new_queue(sqs, "busy", VisibilityTimeout="120")
    senders, per_sender, pollers = 4, 150, 8
    total = senders * per_sender
    received: Counter[str] = Counter()
    sent: list[str] = []
    lock = threading.Lock()
    errors: list[BaseException] = []

    def send(n: int) -> None:
        for start in range(0, per_sender, 10):
            entries = [{"Id": str(i), "MessageBody": f"{n}-{start + i}"} for i in range(10)]
            answer = sqs.send_message_batch(QueueUrl=url, Entries=entries)
            with lock:
                sent.extend(m["MessageId"] for m in answer["Successful"])

    def poll() -> None:
        deadline = time.monotonic() + 40
        while time.monotonic() < deadline:
            with lock:
                if sum(received.values()) >= total:
                    return
            messages = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10, WaitTimeSeconds=1).get(
                "Messages", []
            )
            with lock:
                received.update(m["MessageId"] for m in messages)
            if messages:
                entries = [{"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]} for i, m in enumerate(messages)]
                assert not sqs.delete_message_batch(QueueUrl=url, Entries=entries).get("Failed")

    def guarded(target: Any, *args: Any) -> None:
        try:
            target(*args)
        except BaseException as exc:  # reported below, in the test's thread
            errors.append(exc)

    threads = [threading.Thread(target=guarded, args=(poll,), daemon=True) for _ in range(pollers)]
    threads += [threading.Thread(target=guarded, args=(send, n), daemon=True) for n in range(senders)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(50)
    assert not errors, errors
    assert len(sent) == total
    assert set(received) == set(sent)  # none lost
    assert [m for m, n in received.items() if n > 1] == []  # none taken twice within its visibility timeout
    counts = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["All"])["Attributes"]
    assert (counts["ApproximateNumberOfMessages"], counts["ApproximateNumberOfMessagesNotVisible"]) == ("0", "0")

"""The SQS event Lambda's event source mapping hands a function: ``{"Records": [...]}``, one record per message,
built from what ``ReceiveMessage`` returned (with ``AttributeNames=["All"]`` and ``MessageAttributeNames=["All"]``)."""

from __future__ import annotations

import base64
import hashlib
import secrets
import time
import uuid
from collections.abc import Mapping, Sequence
from typing import Any


def queue_arn(region: str, account_id: str, queue_name: str) -> str:
    return f"arn:aws:sqs:{region}:{account_id}:{queue_name}"


def queue_name_of(arn: str) -> str:
    """``arn:aws:sqs:REGION:ACCOUNT:NAME`` → NAME; a ValueError when it is not an SQS queue ARN."""
    parts = arn.split(":")
    if len(parts) != 6 or parts[0] != "arn" or parts[2] != "sqs" or not parts[5]:
        raise ValueError(f"{arn!r} is not an SQS queue ARN (arn:aws:sqs:REGION:ACCOUNT:NAME)")
    return parts[5]


def _message_attribute(value: Mapping[str, Any]) -> dict[str, Any]:
    # Lambda spells the fields in camelCase and always carries both list fields.
    attribute: dict[str, Any] = {
        "stringListValues": list(value.get("StringListValues", [])),
        "binaryListValues": list(value.get("BinaryListValues", [])),
        "dataType": value.get("DataType", "String"),
    }
    if "StringValue" in value:
        attribute["stringValue"] = value["StringValue"]
    if "BinaryValue" in value:
        attribute["binaryValue"] = value["BinaryValue"]
    return attribute


def record(message: Mapping[str, Any], *, queue_arn: str, region: str) -> dict[str, Any]:
    """One record from one message as ``ReceiveMessage`` returned it."""
    body = str(message.get("Body", ""))
    result: dict[str, Any] = {
        "messageId": message["MessageId"],
        "receiptHandle": message["ReceiptHandle"],
        "body": body,
        "attributes": {str(k): str(v) for k, v in (message.get("Attributes") or {}).items()},
        "messageAttributes": {
            str(k): _message_attribute(v) for k, v in (message.get("MessageAttributes") or {}).items()
        },
        "md5OfBody": message.get("MD5OfBody") or hashlib.md5(body.encode()).hexdigest(),
        "eventSource": "aws:sqs",
        "eventSourceARN": queue_arn,
        "awsRegion": region,
    }
    if message.get("MD5OfMessageAttributes"):
        result["md5OfMessageAttributes"] = message["MD5OfMessageAttributes"]
    return result


def event(messages: Sequence[Mapping[str, Any]], *, queue_arn: str, region: str) -> dict[str, Any]:
    """The event of one batch."""
    return {"Records": [record(m, queue_arn=queue_arn, region=region) for m in messages]}


def example(
    *,
    body: str = "Hello from SQS!",
    queue: str = "example-queue",
    count: int = 1,
    attributes: dict[str, str] | None = None,
    region: str = "us-east-1",
    account_id: str = "123456789012",
) -> dict[str, Any]:
    """An SQS batch of ``count`` made-up messages with ``body``; ``attributes`` become String message attributes."""
    if not 1 <= count <= 10_000:
        raise ValueError(f"count {count}: an SQS batch has 1 to 10000 messages")
    now_ms = str(int(time.time() * 1000))
    messages = [
        {
            "MessageId": str(uuid.uuid4()),
            "ReceiptHandle": base64.b64encode(secrets.token_bytes(48)).decode(),
            "Body": body,
            "Attributes": {
                "ApproximateReceiveCount": "1",
                "SentTimestamp": now_ms,
                "SenderId": account_id,
                "ApproximateFirstReceiveTimestamp": now_ms,
            },
            "MessageAttributes": {
                name: {"DataType": "String", "StringValue": str(value)} for name, value in (attributes or {}).items()
            },
        }
        for _ in range(count)
    ]
    return event(messages, queue_arn=queue_arn(region, account_id, queue), region=region)

"""Amazon SNS notifications as a subscribed Lambda function receives them."""

from __future__ import annotations

import base64
import secrets
from typing import Any

from ._common import iso_millis, new_uuid


def message_attributes(attributes: dict[str, str]) -> dict[str, dict[str, str]]:
    """String message attributes in SNS's delivered shape (``{"Type": "String", "Value": ...}``)."""
    return {name: {"Type": "String", "Value": value} for name, value in attributes.items()}


def notification_record(
    message: str = "Hello from SNS!",
    *,
    topic: str = "example-topic",
    subject: str | None = "example subject",
    attributes: dict[str, str] | None = None,
    region: str = "us-east-1",
    account_id: str = "123456789012",
) -> dict[str, Any]:
    """One record of an SNS delivery to Lambda."""
    topic_arn = f"arn:aws:sns:{region}:{account_id}:{topic}"
    subscription = new_uuid()
    return {
        "EventSource": "aws:sns",
        "EventVersion": "1.0",
        "EventSubscriptionArn": f"{topic_arn}:{subscription}",
        "Sns": {
            "Type": "Notification",
            "MessageId": new_uuid(),
            "TopicArn": topic_arn,
            "Subject": subject,
            "Message": message,
            "Timestamp": iso_millis(),
            "SignatureVersion": "1",
            "Signature": base64.b64encode(secrets.token_bytes(256)).decode(),
            "SigningCertUrl": f"https://sns.{region}.amazonaws.com/SimpleNotificationService-lambda-freeze.pem",
            "UnsubscribeUrl": (
                f"https://sns.{region}.amazonaws.com/?Action=Unsubscribe&SubscriptionArn={topic_arn}:{subscription}"
            ),
            "MessageAttributes": message_attributes(attributes or {}),
        },
    }


def notification(
    message: str = "Hello from SNS!",
    *,
    topic: str = "example-topic",
    subject: str | None = "example subject",
    attributes: dict[str, str] | None = None,
    region: str = "us-east-1",
) -> dict[str, Any]:
    """An SNS delivery of one message (a JSON document is sent as its text, as SNS does)."""
    return {
        "Records": [notification_record(message, topic=topic, subject=subject, attributes=attributes, region=region)]
    }

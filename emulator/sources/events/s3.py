"""Amazon S3 event notifications as Lambda receives them (event structure version 2.1)."""

from __future__ import annotations

import base64
import hashlib
import secrets
import urllib.parse
from typing import Any

from ._common import hex_id, iso_millis

REMOVED = "ObjectRemoved:"


def object_record(
    bucket: str = "example-bucket",
    key: str = "example/key.json",
    *,
    event_name: str = "ObjectCreated:Put",
    size: int = 1024,
    etag: str | None = None,
    version_id: str | None = None,
    region: str = "us-east-1",
    principal_id: str = "EXAMPLE",
    source_ip: str = "127.0.0.1",
    configuration_id: str = "lambda-freeze",
) -> dict[str, Any]:
    """One record of an S3 notification. The key arrives URL-encoded as S3 sends it (a space is ``+``); removal
    events carry no size or ETag."""
    obj: dict[str, Any] = {"key": urllib.parse.quote_plus(key, safe="/"), "sequencer": hex_id(18)}
    if not event_name.startswith(REMOVED):
        obj["size"] = size
        obj["eTag"] = etag or hashlib.md5(key.encode(), usedforsecurity=False).hexdigest()
    if version_id is not None:
        obj["versionId"] = version_id
    return {
        "eventVersion": "2.1",
        "eventSource": "aws:s3",
        "awsRegion": region,
        "eventTime": iso_millis(),
        "eventName": event_name.removeprefix("s3:"),
        "userIdentity": {"principalId": principal_id},
        "requestParameters": {"sourceIPAddress": source_ip},
        "responseElements": {
            "x-amz-request-id": hex_id(16),
            "x-amz-id-2": base64.b64encode(secrets.token_bytes(48)).decode(),
        },
        "s3": {
            "s3SchemaVersion": "1.0",
            "configurationId": configuration_id,
            "bucket": {"name": bucket, "ownerIdentity": {"principalId": principal_id}, "arn": f"arn:aws:s3:::{bucket}"},
            "object": obj,
        },
    }


def notification(
    bucket: str = "example-bucket",
    key: str = "example/key.json",
    *,
    event_name: str = "ObjectCreated:Put",
    size: int = 1024,
    region: str = "us-east-1",
) -> dict[str, Any]:
    """An S3 notification of one object, as a function subscribed to the bucket receives it."""
    return {"Records": [object_record(bucket, key, event_name=event_name, size=size, region=region)]}

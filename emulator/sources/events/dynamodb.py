"""Amazon DynamoDB Streams records as a Lambda event source mapping delivers them."""

from __future__ import annotations

import itertools
import time
import uuid
from decimal import Decimal
from typing import Any

import orjson

EVENT_NAMES = ("INSERT", "MODIFY", "REMOVE")
STREAM_VIEW_TYPES = ("NEW_AND_OLD_IMAGES", "NEW_IMAGE", "OLD_IMAGE", "KEYS_ONLY")
_sequence = itertools.count(100_000_000_000_000_000_000)


def attribute_value(value: Any) -> dict[str, Any]:
    """A plain JSON value as a DynamoDB attribute value (``{"S": ...}``, ``{"N": "..."}``, ``{"M": ...}``, ...)."""
    if value is None:
        return {"NULL": True}
    if isinstance(value, bool):
        return {"BOOL": value}
    if isinstance(value, (int, float, Decimal)):
        return {"N": str(value)}
    if isinstance(value, str):
        return {"S": value}
    if isinstance(value, (bytes, bytearray)):
        import base64

        return {"B": base64.b64encode(value).decode()}
    if isinstance(value, (list, tuple)):
        return {"L": [attribute_value(item) for item in value]}
    if isinstance(value, dict):
        return {"M": {str(k): attribute_value(v) for k, v in value.items()}}
    raise TypeError(f"no DynamoDB attribute type for {type(value).__name__}")


def item(values: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {name: attribute_value(value) for name, value in values.items()}


def stream_record(
    keys: dict[str, Any] | None = None,
    *,
    new_image: dict[str, Any] | None = None,
    old_image: dict[str, Any] | None = None,
    event_name: str = "INSERT",
    table: str = "example-table",
    stream_view_type: str = "NEW_AND_OLD_IMAGES",
    region: str = "us-east-1",
    account_id: str = "123456789012",
) -> dict[str, Any]:
    """One stream record. Images are plain JSON objects, turned into attribute values; which images appear follows
    the event name (no old image on INSERT, no new one on REMOVE) and the stream view type."""
    if event_name not in EVENT_NAMES:
        raise ValueError(f"event name {event_name!r}: one of {', '.join(EVENT_NAMES)}")
    if stream_view_type not in STREAM_VIEW_TYPES:
        raise ValueError(f"stream view type {stream_view_type!r}: one of {', '.join(STREAM_VIEW_TYPES)}")
    keys = keys if keys is not None else {"Id": 101}
    new_image = new_image if new_image is not None else {**keys, "Message": "New item!"}
    body: dict[str, Any] = {
        "ApproximateCreationDateTime": int(time.time()),
        "Keys": item(keys),
        "SequenceNumber": str(next(_sequence)),
        "StreamViewType": stream_view_type,
    }
    if event_name != "REMOVE" and stream_view_type in ("NEW_AND_OLD_IMAGES", "NEW_IMAGE"):
        body["NewImage"] = item(new_image)
    if event_name != "INSERT" and stream_view_type in ("NEW_AND_OLD_IMAGES", "OLD_IMAGE"):
        body["OldImage"] = item(old_image if old_image is not None else {**keys, "Message": "Old item"})
    body["SizeBytes"] = len(orjson.dumps({k: body[k] for k in ("Keys", "NewImage", "OldImage") if k in body}))
    stream_label = time.strftime("%Y-%m-%dT%H:%M:%S.000", time.gmtime())
    return {
        "eventID": uuid.uuid4().hex,
        "eventName": event_name,
        "eventVersion": "1.1",
        "eventSource": "aws:dynamodb",
        "awsRegion": region,
        "dynamodb": body,
        "eventSourceARN": f"arn:aws:dynamodb:{region}:{account_id}:table/{table}/stream/{stream_label}",
    }


def stream_batch(
    keys: dict[str, Any] | None = None,
    *,
    new_image: dict[str, Any] | None = None,
    old_image: dict[str, Any] | None = None,
    event_name: str = "INSERT",
    table: str = "example-table",
    stream_view_type: str = "NEW_AND_OLD_IMAGES",
    region: str = "us-east-1",
) -> dict[str, Any]:
    """A batch of one stream record, as the event source mapping invokes the function."""
    record = stream_record(
        keys,
        new_image=new_image,
        old_image=old_image,
        event_name=event_name,
        table=table,
        stream_view_type=stream_view_type,
        region=region,
    )
    return {"Records": [record]}

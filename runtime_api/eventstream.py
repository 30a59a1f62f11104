"""The AWS event stream encoding (``application/vnd.amazon.eventstream``) that InvokeWithResponseStream answers in.

A message is a 12-byte prelude (total length, headers length, CRC32 of those 8 bytes), the headers, the payload
and a CRC32 of everything before it; integers are big-endian. Each header is a 1-byte name length, the name, a
1-byte value type and the value: only type 7 (a string with a 2-byte length) is needed here.
"""

from __future__ import annotations

import json
import struct
import zlib
from collections.abc import Mapping

CONTENT_TYPE = "application/vnd.amazon.eventstream"

_PRELUDE = struct.Struct(">II")
_CRC = struct.Struct(">I")
_STRING = 7  # header value type: UTF-8 string with a uint16 length
MAX_HEADER_VALUE_BYTES = 32767


def _header(name: str, value: str) -> bytes:
    raw_name, raw_value = name.encode(), value.encode()
    if len(raw_name) > 255 or len(raw_value) > MAX_HEADER_VALUE_BYTES:
        raise ValueError(f"event stream header {name!r} is too long")
    return bytes((len(raw_name),)) + raw_name + bytes((_STRING,)) + struct.pack(">H", len(raw_value)) + raw_value


def encode_message(headers: Mapping[str, str], payload: bytes) -> bytes:
    """One event stream message."""
    encoded = b"".join(_header(name, value) for name, value in headers.items())
    total = _PRELUDE.size + _CRC.size + len(encoded) + len(payload) + _CRC.size
    prelude = _PRELUDE.pack(total, len(encoded))
    message = prelude + _CRC.pack(zlib.crc32(prelude)) + encoded + payload
    return message + _CRC.pack(zlib.crc32(message))


def _event(event_type: str, content_type: str, payload: bytes) -> bytes:
    return encode_message({":event-type": event_type, ":content-type": content_type, ":message-type": "event"}, payload)


def payload_chunk(data: bytes) -> bytes:
    """A ``PayloadChunk`` event: a piece of the function's response, as it arrived."""
    return _event("PayloadChunk", "application/octet-stream", data)


def invoke_complete(
    error_code: str | None = None, error_details: str | None = None, log_result: str | None = None
) -> bytes:
    """The closing ``InvokeComplete`` event; every field is absent unless given (``log_result`` is base64)."""
    fields = {"ErrorCode": error_code, "ErrorDetails": error_details, "LogResult": log_result}
    body = json.dumps({key: value for key, value in fields.items() if value is not None}).encode()
    return _event("InvokeComplete", "application/json", body)

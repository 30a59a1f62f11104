"""What the API Gateway and function URL events share: the request's query, cookies, body encoding and times."""

from __future__ import annotations

import base64
import time
from collections.abc import Sequence
from urllib.parse import parse_qsl

# Bodies with these content types reach the function as text; others as base64 (HTTP APIs, function URLs).
_TEXT_TYPES = (
    "text/",
    "application/json",
    "application/javascript",
    "application/xml",
    "application/x-www-form-urlencoded",
    "application/graphql",
)


def query_pairs(query_string: str) -> list[tuple[str, str]]:
    """The query's name/value pairs in order, decoded, blank values kept."""
    return parse_qsl(query_string, keep_blank_values=True)


def is_text(content_type: str | None, body: bytes) -> bool:
    """A body the HTTP API and function URLs pass as text: a textual type, or no type and valid UTF-8."""
    kind = (content_type or "").split(";")[0].strip().lower()
    if kind:
        return kind.startswith(_TEXT_TYPES) or kind.endswith(("+json", "+xml"))
    try:
        body.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True


def encode_body(body: bytes, as_base64: bool) -> tuple[str | None, bool]:
    """The event's ``body`` and ``isBase64Encoded``; no body is ``None``."""
    if not body:
        return None, False
    if as_base64:
        return base64.b64encode(body).decode("ascii"), True
    return body.decode("utf-8", "replace"), False


def media_type_matches(content_type: str | None, patterns: Sequence[str]) -> bool:
    """A REST API's ``BinaryMediaTypes`` test: ``image/png``, ``image/*`` or ``*/*``."""
    kind = (content_type or "").split(";")[0].strip().lower()
    for pattern in patterns:
        pattern = pattern.lower().replace("~1", "/")  # CloudFormation escapes the slash as ~1
        if pattern == "*/*" or pattern == kind:
            return True
        if pattern.endswith("/*") and kind.startswith(pattern[:-1]):
            return True
    return False


def request_time(epoch_ms: int) -> str:
    """``07/Dec/2026:03:27:05 +0000``, the services' ``requestTime``."""
    return time.strftime("%d/%b/%Y:%H:%M:%S +0000", time.gmtime(epoch_ms / 1000))


def cookies(header: str | None) -> list[str]:
    """The Cookie header's cookies, one string each (HTTP APIs and function URLs pass them apart)."""
    if not header:
        return []
    return [part.strip() for part in header.replace(",", ";").split(";") if part.strip()]

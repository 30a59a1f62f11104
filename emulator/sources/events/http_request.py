"""What the API Gateway and function URL events share: the request's header fields, query, cookies, body encoding
and times."""

from __future__ import annotations

import base64
import time
from collections.abc import Mapping, Sequence
from urllib.parse import parse_qsl

from runtime_api.front_door import HttpRequest

# Bodies with these content types reach the function as text; others as base64 (HTTP APIs, function URLs).
_TEXT_TYPES = (
    "text/",
    "application/json",
    "application/javascript",
    "application/xml",
    "application/x-www-form-urlencoded",
    "application/graphql",
)


def header_lines(request: HttpRequest) -> list[tuple[str, str]]:
    """The request's header fields one by one (names lower-cased), as the services pass them on: with the caller's
    address appended to ``X-Forwarded-For`` (``client-sent, source-ip``), or set to it when the client sent none,
    as API Gateway and function URLs do."""
    lines = list(request.header_lines) or list(request.headers.items())
    sent = [value for name, value in lines if name == "x-forwarded-for"]
    if not request.source_ip:
        return lines
    forwarded = ", ".join([*sent, request.source_ip])
    if not sent:
        return [*lines, ("x-forwarded-for", forwarded)]
    # repeated X-Forwarded-For fields make one list (RFC 9110 section 5.3), at the place of the first
    first = next(i for i, (name, _) in enumerate(lines) if name == "x-forwarded-for")
    kept = [(name, value) for i, (name, value) in enumerate(lines) if name != "x-forwarded-for" or i == first]
    kept[first] = ("x-forwarded-for", forwarded)
    return kept


def query_pairs(query_string: str) -> list[tuple[str, str]]:
    """The query's name/value pairs in order, decoded, blank values kept."""
    return parse_qsl(query_string, keep_blank_values=True) if query_string else []


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


_last_request_time: tuple[int, str] = (-1, "")


def request_time(epoch_ms: int) -> str:
    """``07/Dec/2026:03:27:05 +0000``, the services' ``requestTime`` (formatted once a second: every request of the
    same second has the same text)."""
    global _last_request_time
    second = epoch_ms // 1000
    cached_second, text = _last_request_time
    if second != cached_second:
        text = time.strftime("%d/%b/%Y:%H:%M:%S +0000", time.gmtime(second))
        _last_request_time = (second, text)
    return text


def cookies(header: str | None) -> list[str]:
    """The Cookie header's cookies, one string each (HTTP APIs and function URLs pass them apart)."""
    if not header:
        return []
    return [part.strip() for part in header.replace(",", ";").split(";") if part.strip()]


def made_up(
    *, method: str, path: str, query: str, headers: Mapping[str, str] | None, body: str, host: str, source_ip: str
) -> HttpRequest:
    """A request no client sent, for ``generate-event``: the front door's events are built from it as from a real
    one. A body without a Content-Type is sent as JSON, as ``curl --json`` would."""
    fields = {str(name).lower(): str(value) for name, value in (headers or {}).items()}
    fields.setdefault("host", host)
    if body and "content-type" not in fields:
        fields["content-type"] = "application/json"
    if body:
        fields.setdefault("content-length", str(len(body.encode())))
    return HttpRequest(
        method=method.upper(),
        path=path if path.startswith("/") else "/" + path,
        query_string=query.removeprefix("?"),
        headers=fields,
        body=body.encode(),
        host=host,
        source_ip=source_ip,
    )

"""A function's answer as API Gateway and function URLs turn it into an HTTP response (payload 1.0 and 2.0 rules,
including 2.0's inferred response), and the answers the services give when there is none."""

from __future__ import annotations

import base64
import json
import re
from collections.abc import Mapping
from typing import Any

import orjson

from runtime_api.front_door import HttpAnswer

# Fields the front door's HTTP layer writes itself; a function's own would contradict them.
_FRAMING = frozenset({"content-length", "transfer-encoding", "connection", "keep-alive", "date"})
JSON = "application/json"


class Malformed(Exception):
    """The function's answer is not an integration response the service accepts (it answers 502)."""


def message(status: int, text: str, *, key: str = "message", headers: Mapping[str, str] | None = None) -> HttpAnswer:
    """A service's own JSON answer, ``{"message": "..."}``."""
    lines = [("Content-Type", JSON), *(headers or {}).items()]
    return HttpAnswer(status, lines, json.dumps({key: text}).encode())


# A run of digits that may be an integer beyond 64 bits, which orjson would read as a float.
_LONG_NUMBER = re.compile(rb"\d{16}")


def _json(payload: bytes) -> Any:
    """The function's answer read as ``json.loads`` reads it. orjson reads it when its reading is the same, in a
    fraction of the time; json reads the rest: integers of 16 digits or more, and what orjson refuses but json
    accepts (NaN and Infinity, lone surrogates, a byte order mark, UTF-16). ``ValueError`` when it is not JSON."""
    if _LONG_NUMBER.search(payload) is None:
        try:
            return orjson.loads(payload)
        except orjson.JSONDecodeError:
            pass
    return json.loads(payload)


def _text(value: Any, what: str) -> str:
    if isinstance(value, str):
        return value
    if isinstance(value, (int, float, bool)):
        return json.dumps(value)
    raise Malformed(f"{what} must be a string, not {type(value).__name__}")


def _status(document: Mapping[str, Any]) -> int:
    status = document.get("statusCode")
    try:
        code = int(status)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        raise Malformed(f"statusCode {status!r} is not a number") from None
    if not 100 <= code <= 599:
        raise Malformed(f"statusCode {code} is not an HTTP status")
    return code


def _body(document: Mapping[str, Any]) -> bytes:
    body = document.get("body")
    if body is None:
        return b""
    text = body if isinstance(body, str) else json.dumps(body)
    if document.get("isBase64Encoded") is True:
        try:
            return base64.b64decode(text, validate=True)
        except ValueError:
            raise Malformed("isBase64Encoded is true but the body is not base64") from None
    try:
        return text.encode()
    except UnicodeEncodeError:  # a lone surrogate ("\\ud800" in the JSON): U+FFFD, as UTF-8 decoders read it
        return text.encode("utf-16", "surrogatepass").decode("utf-16", "replace").encode()


def _headers(document: Mapping[str, Any], *, multi: bool) -> list[tuple[str, str]]:
    lines: list[tuple[str, str]] = []
    single = document.get("headers") or {}
    if not isinstance(single, dict):
        raise Malformed("headers must be an object")
    multi_values = (document.get("multiValueHeaders") or {}) if multi else {}
    if not isinstance(multi_values, dict):
        raise Malformed("multiValueHeaders must be an object")
    for name, value in single.items():
        if name not in multi_values:  # a name in both: only multiValueHeaders' values are kept, as API Gateway does
            lines.append((str(name), _text(value, f"header {name}")))
    for name, values in multi_values.items():
        if not isinstance(values, list):
            raise Malformed(f"multiValueHeaders.{name} must be a list")
        lines.extend((str(name), _text(value, f"header {name}")) for value in values)
    return [(name, value) for name, value in lines if name.lower() not in _FRAMING]


def _with_content_type(lines: list[tuple[str, str]]) -> list[tuple[str, str]]:
    if not any(name.lower() == "content-type" for name, _ in lines):
        lines.insert(0, ("Content-Type", JSON))
    return lines


def v1_answer(payload: bytes) -> HttpAnswer:
    """Payload format 1.0 (REST APIs, HTTP APIs at 1.0): an object with ``statusCode``, else ``Malformed``."""
    try:
        document = _json(payload)
    except ValueError:
        raise Malformed("the response is not JSON") from None
    if not isinstance(document, dict) or "statusCode" not in document:
        raise Malformed("the response has no statusCode")
    status = _status(document)
    return HttpAnswer(status, _with_content_type(_headers(document, multi=True)), _body(document))


def v2_answer(payload: bytes) -> HttpAnswer:
    """Payload format 2.0 (HTTP APIs, function URLs): with ``statusCode`` as written, else inferred (200, JSON,
    the function's answer as the body); ``cookies`` become Set-Cookie lines."""
    try:
        document = _json(payload) if payload else None
    except ValueError:
        raise Malformed("the response is not JSON") from None
    if not isinstance(document, dict) or "statusCode" not in document:
        return HttpAnswer(200, [("Content-Type", JSON)], payload)
    status = _status(document)
    lines = _with_content_type(_headers(document, multi=False))
    cookies = document.get("cookies") or []
    if not isinstance(cookies, list):
        raise Malformed("cookies must be a list of strings")
    lines.extend(("Set-Cookie", _text(cookie, "a cookie")) for cookie in cookies)
    return HttpAnswer(status, lines, _body(document))


# A streamed function URL response starts with this JSON prelude (status, headers, cookies), then 8 NUL bytes.
STREAM_PRELUDE_TYPE = "application/vnd.awslambda.http-integration-response"
PRELUDE_END = b"\0" * 8


def prelude_answer(prelude: bytes) -> HttpAnswer:
    """The head of a streamed response from its prelude (``awslambda.HttpResponseStream.from(stream, {...})``)."""
    try:
        document = _json(prelude) if prelude.strip() else {}
    except ValueError:
        raise Malformed("the streamed response's prelude is not JSON") from None
    if not isinstance(document, dict):
        raise Malformed("the streamed response's prelude is not an object")
    status = _status(document) if "statusCode" in document else 200
    lines = _headers(document, multi=False)
    if not any(name.lower() == "content-type" for name, _ in lines):
        lines.insert(0, ("Content-Type", "application/octet-stream"))
    cookies = document.get("cookies") or []
    lines.extend(("Set-Cookie", _text(cookie, "a cookie")) for cookie in cookies)
    return HttpAnswer(status, lines)

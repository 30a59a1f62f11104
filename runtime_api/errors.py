"""Error rendering in the two shapes Lambda uses: the Runtime API's and the AWS REST-JSON one of the Invoke API."""

from __future__ import annotations

import json
from collections.abc import Mapping

from .http import Response


class HttpApiError(Exception):
    """An error raised by the HTTP layer itself (bad request, unknown route), shaped like the engine's."""

    def __init__(self, status: int, error_type: str, message: str, extra: Mapping[str, str] | None = None):
        super().__init__(message)
        self.status = status
        self.error_type = error_type
        self.message = message
        self.extra: Mapping[str, str] = extra or {}


def runtime_error(status: int, error_type: str, message: str) -> Response:
    """The Runtime API's error body: ``{"errorMessage": ..., "errorType": ...}``."""
    body = json.dumps({"errorMessage": message, "errorType": error_type}).encode()
    return Response(status, body, content_type="application/json")


def aws_error(
    status: int,
    error_type: str,
    message: str,
    *,
    request_id: str,
    extra: Mapping[str, str] | None = None,
) -> Response:
    """An AWS REST-JSON error, as Lambda's front end sends it: botocore maps ``x-amzn-ErrorType`` to its class."""
    fields: dict[str, str] = {"Type": "User" if status < 500 else "Service", "message": message}
    fields.update(extra or {})
    return Response(
        status,
        json.dumps(fields).encode(),
        content_type="application/json",
        headers={"x-amzn-ErrorType": error_type, "x-amzn-RequestId": request_id},
    )

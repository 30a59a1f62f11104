"""Lambda function URLs: the event (payload format 2.0, route ``$default``) as the service sends it."""

from __future__ import annotations

import time
import uuid
from typing import Any

from runtime_api.front_door import HttpRequest

from .http_api import http_context, v2_event
from .http_request import made_up, request_time


def url_id(function_name: str) -> str:
    """The URL's id: the function's name here, since the front door routes on it (``<name>.lambda-url.localhost``)."""
    return function_name.lower()


def function_url_event(
    request: HttpRequest,
    *,
    function_name: str,
    request_id: str,
    iam_caller: str | None = None,
    epoch_ms: int | None = None,
) -> dict[str, Any]:
    """The event a function URL sends; ``iam_caller`` is the signed request's access key under ``AWS_IAM``."""
    epoch_ms = int(time.time() * 1000) if epoch_ms is None else epoch_ms
    ident = url_id(function_name)
    context: dict[str, Any] = {
        "accountId": "anonymous",
        "apiId": ident,
        "domainName": request.host or f"{ident}.lambda-url.localhost",
        "domainPrefix": ident,
        "http": http_context(request),
        "requestId": request_id,
        "routeKey": "$default",
        "stage": "$default",
        "time": request_time(epoch_ms),
        "timeEpoch": epoch_ms,
    }
    if iam_caller is not None:
        context["accountId"] = "000000000000"
        context["authorizer"] = {
            "iam": {
                "accessKey": iam_caller,
                "accountId": "000000000000",
                "callerId": iam_caller,
                "cognitoIdentity": None,
                "principalOrgId": None,
                "userArn": f"arn:aws:iam::000000000000:user/{iam_caller}",
                "userId": iam_caller,
            }
        }
    return v2_event(request, route_key="$default", request_context=context)


def example(
    *,
    method: str = "GET",
    path: str = "/",
    query: str = "",
    headers: dict[str, str] | None = None,
    body: str = "",
    function_name: str = "example",
    iam_caller: str | None = None,
) -> dict[str, Any]:
    """A function URL event for a made-up request; ``--iam-caller KEY`` as a request signed under ``AWS_IAM``."""
    request = made_up(
        method=method, path=path, query=query, headers=headers, body=body,
        host=f"{url_id(function_name)}.lambda-url.localhost", source_ip="127.0.0.1",
    )  # fmt: skip
    return function_url_event(request, function_name=function_name, request_id=str(uuid.uuid4()), iam_caller=iam_caller)

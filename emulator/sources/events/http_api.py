"""API Gateway HTTP API, Lambda proxy integration: the payload format 2.0 event (1.0 is ``apigateway``'s)."""

from __future__ import annotations

import time
import uuid
from collections.abc import Mapping
from typing import Any

from runtime_api.front_door import HttpRequest

from .http_request import cookies, encode_body, header_lines, is_text, made_up, query_pairs, request_time

API_ID = "local"


def v2_query(query_string: str) -> dict[str, str]:
    """A 2.0 event's ``queryStringParameters``: a repeated name's values joined with commas."""
    joined: dict[str, str] = {}
    for name, value in query_pairs(query_string):
        joined[name] = f"{joined[name]},{value}" if name in joined else value
    return joined


def v2_event(
    request: HttpRequest,
    *,
    route_key: str,
    request_context: dict[str, Any],
    path_parameters: Mapping[str, str] | None = None,
    stage_variables: Mapping[str, str] | None = None,
) -> dict[str, Any]:
    """The 2.0 shape that HTTP APIs and function URLs share; fields without a value are left out, as they do."""
    # A repeated field's values joined with commas; the Cookie fields go to ``cookies``, one entry per cookie.
    headers: dict[str, str] = {}
    jar: list[str] = []
    for name, value in header_lines(request):
        if name == "cookie":
            jar += cookies(value)
        else:
            headers[name] = f"{headers[name]},{value}" if name in headers else value
    binary = bool(request.body) and not is_text(headers.get("content-type"), request.body)  # no body: nothing to ask
    body, encoded = encode_body(request.body, binary)
    event: dict[str, Any] = {
        "version": "2.0",
        "routeKey": route_key,
        "rawPath": request.path,
        "rawQueryString": request.query_string,
    }
    if jar:
        event["cookies"] = jar
    event["headers"] = headers
    query = v2_query(request.query_string)
    if query:
        event["queryStringParameters"] = query
    event["requestContext"] = request_context
    if body is not None:
        event["body"] = body
    if path_parameters:
        event["pathParameters"] = dict(path_parameters)
    event["isBase64Encoded"] = encoded
    if stage_variables:
        event["stageVariables"] = dict(stage_variables)
    return event


def http_context(request: HttpRequest) -> dict[str, Any]:
    """``requestContext.http``."""
    return {
        "method": request.method,
        "path": request.path,
        "protocol": request.protocol,
        "sourceIp": request.source_ip,
        "userAgent": request.headers.get("user-agent", ""),
    }


def http_api_event(
    request: HttpRequest,
    *,
    route_key: str,
    path_parameters: Mapping[str, str],
    stage: str,
    request_id: str,
    account_id: str,
    stage_variables: Mapping[str, str] | None = None,
    epoch_ms: int | None = None,
) -> dict[str, Any]:
    """The event an HTTP API sends for ``request`` on ``route_key`` (``GET /orders/{id}``, ``$default``)."""
    epoch_ms = int(time.time() * 1000) if epoch_ms is None else epoch_ms
    host = request.host or f"{API_ID}.execute-api.localhost"
    context = {
        "accountId": account_id,
        "apiId": API_ID,
        "domainName": host,
        "domainPrefix": host.split(".")[0],
        "http": http_context(request),
        "requestId": request_id,
        "routeKey": route_key,
        "stage": stage,
        "time": request_time(epoch_ms),
        "timeEpoch": epoch_ms,
    }
    return v2_event(
        request,
        route_key=route_key,
        request_context=context,
        path_parameters=path_parameters,
        stage_variables=stage_variables,
    )


def example(
    *,
    method: str = "GET",
    path: str = "/hello",
    query: str = "",
    headers: dict[str, str] | None = None,
    body: str = "",
    route_key: str | None = None,
    path_parameters: dict[str, str] | None = None,
    stage: str = "$default",
    stage_variables: dict[str, str] | None = None,
    account_id: str = "123456789012",
) -> dict[str, Any]:
    """An HTTP API proxy event (payload 2.0) for a made-up request; ``route_key`` defaults to ``METHOD PATH``."""
    request = made_up(
        method=method, path=path, query=query, headers=headers, body=body,
        host=f"{API_ID}.execute-api.localhost", source_ip="127.0.0.1",
    )  # fmt: skip
    return http_api_event(
        request,
        route_key=route_key or f"{request.method} {request.path}",
        path_parameters=path_parameters or {},
        stage=stage,
        request_id=str(uuid.uuid4()),
        account_id=account_id,
        stage_variables=stage_variables,
    )

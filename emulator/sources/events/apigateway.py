"""API Gateway REST API, Lambda proxy integration: the payload format 1.0 event."""

from __future__ import annotations

import time
import uuid
from collections.abc import Mapping, Sequence
from typing import Any

from runtime_api.front_door import HttpRequest

from .http_request import encode_body, header_lines, made_up, media_type_matches, query_pairs, request_time

API_ID = "local"  # the REST API's id in the event; also its domain prefix


def rest_event(
    request: HttpRequest,
    *,
    resource: str,
    path_parameters: Mapping[str, str],
    stage: str,
    request_id: str,
    account_id: str,
    binary_media_types: Sequence[str] = (),
    stage_variables: Mapping[str, str] | None = None,
    epoch_ms: int | None = None,
) -> dict[str, Any]:
    """The event API Gateway sends for ``request`` on the route ``resource`` (``/orders/{id}``, ``/{proxy+}``)."""
    epoch_ms = int(time.time() * 1000) if epoch_ms is None else epoch_ms
    # Each field's values apart in multiValueHeaders; headers has the last of them (payload 1.0).
    multi_headers: dict[str, list[str]] = {}
    for name, value in header_lines(request):
        multi_headers.setdefault(name, []).append(value)
    headers = {name: values[-1] for name, values in multi_headers.items()}
    pairs = query_pairs(request.query_string)
    multi_query: dict[str, list[str]] = {}
    for name, value in pairs:
        multi_query.setdefault(name, []).append(value)
    body, encoded = encode_body(request.body, media_type_matches(headers.get("content-type"), binary_media_types))
    host = request.host or f"{API_ID}.execute-api.localhost"
    return {
        "resource": resource,
        "path": request.path,
        "httpMethod": request.method,
        "headers": headers or None,
        "multiValueHeaders": multi_headers or None,
        # The last value of a repeated name, as API Gateway does.
        "queryStringParameters": {name: values[-1] for name, values in multi_query.items()} or None,
        "multiValueQueryStringParameters": multi_query or None,
        "pathParameters": dict(path_parameters) or None,
        "stageVariables": dict(stage_variables) if stage_variables else None,
        "requestContext": {
            "accountId": account_id,
            "apiId": API_ID,
            "domainName": host,
            "domainPrefix": host.split(".")[0],
            "extendedRequestId": request_id,
            "httpMethod": request.method,
            "identity": {
                "accessKey": None,
                "accountId": None,
                "caller": None,
                "cognitoAuthenticationProvider": None,
                "cognitoAuthenticationType": None,
                "cognitoIdentityId": None,
                "cognitoIdentityPoolId": None,
                "principalOrgId": None,
                "sourceIp": request.source_ip,
                "user": None,
                "userAgent": headers.get("user-agent"),
                "userArn": None,
            },
            "path": f"/{stage}{request.path}",
            "protocol": request.protocol,
            "requestId": request_id,
            "requestTime": request_time(epoch_ms),
            "requestTimeEpoch": epoch_ms,
            "resourceId": None,
            "resourcePath": resource,
            "stage": stage,
        },
        "body": body,
        "isBase64Encoded": encoded,
    }


def example(
    *,
    method: str = "GET",
    path: str = "/hello",
    query: str = "",
    headers: dict[str, str] | None = None,
    body: str = "",
    resource: str | None = None,
    path_parameters: dict[str, str] | None = None,
    stage: str = "Prod",
    stage_variables: dict[str, str] | None = None,
    account_id: str = "123456789012",
) -> dict[str, Any]:
    """A REST API proxy event (payload 1.0) for a made-up request; ``resource`` is the route (default: the path)."""
    request = made_up(
        method=method, path=path, query=query, headers=headers, body=body,
        host=f"{API_ID}.execute-api.localhost", source_ip="127.0.0.1",
    )  # fmt: skip
    return rest_event(
        request,
        resource=resource or request.path,
        path_parameters=path_parameters or {},
        stage=stage,
        request_id=str(uuid.uuid4()),
        account_id=account_id,
        stage_variables=stage_variables,
    )

"""The Invoke API 2015-03-31 (what boto3, the AWS CLI and curl call) and the inspection API beside it."""

from __future__ import annotations

import base64
import json
import logging
import uuid
from collections.abc import Awaitable, Callable
from urllib.parse import unquote

import orjson
from aiohttp import web

from . import eventstream, openapi
from .errors import HttpApiError, aws_error
from .protocol import MAX_ASYNC_PAYLOAD_BYTES, MAX_SYNC_PAYLOAD_BYTES, ApiError, InvokeBackend, InvokeRequest

log = logging.getLogger("lambda_freeze.invoke_api")

INVOCATION_TYPES = ("Event", "RequestResponse", "DryRun")
STREAM_INVOCATION_TYPES = ("RequestResponse", "DryRun")  # InvokeWithResponseStream is synchronous only
_backend_key = web.AppKey("backend", InvokeBackend)  # type: ignore[type-abstract]


def _validate_payload(payload: bytes, invocation_type: str) -> bytes:
    limit = MAX_ASYNC_PAYLOAD_BYTES if invocation_type == "Event" else MAX_SYNC_PAYLOAD_BYTES
    if len(payload) > limit:
        raise HttpApiError(
            413,
            "RequestTooLargeException",
            f"Request must be smaller than {limit} bytes for the InvokeFunction operation",
        )
    if not payload.strip():
        return b"{}"
    try:
        orjson.loads(payload)  # a 1 MB event parses in a quarter of json's time
    except orjson.JSONDecodeError as exc:
        raise HttpApiError(
            400,
            "InvalidRequestContentException",
            f"Could not parse request body into json: Could not parse payload into json: {exc}",
        ) from None
    return payload


async def _read_payload(request: web.Request, invocation_type: str) -> bytes:
    try:
        raw = await request.read()
    except web.HTTPRequestEntityTooLarge:
        raw = None
    if raw is None:
        limit = MAX_ASYNC_PAYLOAD_BYTES if invocation_type == "Event" else MAX_SYNC_PAYLOAD_BYTES
        raise HttpApiError(
            413,
            "RequestTooLargeException",
            f"Request must be smaller than {limit} bytes for the InvokeFunction operation",
        )
    return _validate_payload(raw, invocation_type)


async def _invoke_request(
    request: web.Request, invocation_types: tuple[str, ...], *, response_stream: bool = False
) -> InvokeRequest:
    """Validate an Invoke or InvokeWithResponseStream call as Lambda does, and read its payload."""
    invocation_type = request.headers.get("X-Amz-Invocation-Type", "RequestResponse")
    if invocation_type not in invocation_types:
        raise HttpApiError(
            400,
            "InvalidParameterValueException",
            f"1 validation error detected: Value '{invocation_type}' at 'invocationType' failed to satisfy "
            f"constraint: Member must satisfy enum value set: [{', '.join(invocation_types)}]",
        )
    log_type = request.headers.get("X-Amz-Log-Type")
    if log_type not in (None, "None", "Tail"):
        raise HttpApiError(
            400,
            "InvalidParameterValueException",
            f"1 validation error detected: Value '{log_type}' at 'logType' failed to satisfy constraint: "
            "Member must satisfy enum value set: [Tail, None]",
        )
    client_context = request.headers.get("X-Amz-Client-Context")
    if client_context is not None:
        try:
            json.loads(base64.b64decode(client_context, validate=True))
        except ValueError:
            raise HttpApiError(
                400, "InvalidRequestContentException", "Client context must be a valid Base64-encoded JSON object."
            ) from None
    payload = await _read_payload(request, invocation_type)
    return InvokeRequest(
        function=unquote(request.match_info["name"]),
        qualifier=request.query.get("Qualifier"),
        payload=payload,
        invocation_type=invocation_type,
        log_type="Tail" if log_type == "Tail" else None,
        client_context=client_context,
        response_stream=response_stream,
    )


async def _invoke(request: web.Request) -> web.StreamResponse:
    result = await request.app[_backend_key].invoke(await _invoke_request(request, INVOCATION_TYPES))
    headers = {"x-amzn-RequestId": result.request_id, **result.headers}
    if result.status == 200:
        headers["X-Amz-Executed-Version"] = result.executed_version
    if result.function_error:
        headers["X-Amz-Function-Error"] = result.function_error
    if result.log_tail is not None:
        headers["X-Amz-Log-Result"] = base64.b64encode(result.log_tail).decode()
    if result.status == 204:
        return web.Response(status=204, headers=headers)
    return web.Response(status=result.status, body=result.payload, headers=headers, content_type=result.content_type)


async def _invoke_with_response_stream(request: web.Request) -> web.StreamResponse:
    """InvokeWithResponseStream: 200 once the function answers, then its response as an event stream, each piece
    as it arrives (``PayloadChunk`` events), closed by an ``InvokeComplete`` event that carries any error and the
    log tail. Errors before the function runs (unknown function, throttling, bad request) are ordinary AWS errors."""
    invoke = await _invoke_request(request, STREAM_INVOCATION_TYPES, response_stream=True)
    result = await request.app[_backend_key].invoke(invoke)
    headers = {"x-amzn-RequestId": result.request_id, **result.headers}
    if result.stream is None:  # DryRun
        return web.Response(status=result.status, headers=headers)
    headers["X-Amz-Executed-Version"] = result.executed_version
    headers["Content-Type"] = eventstream.CONTENT_TYPE
    response = web.StreamResponse(status=200, headers=headers)
    stream = result.stream
    ended = False
    try:
        await response.prepare(request)
        async for chunk in stream:
            await response.write(eventstream.payload_chunk(chunk))
        end = await stream.end()
        ended = True
        log_result = base64.b64encode(end.log_tail).decode() if end.log_tail is not None else None
        await response.write(eventstream.invoke_complete(end.error_code, end.error_details, log_result))
        await response.write_eof()
    except ConnectionError:
        log.info("the caller of %s went away before its response stream ended", result.request_id)
    finally:
        if not ended:
            stream.abandon()
    return response


async def _environments(request: web.Request) -> web.StreamResponse:
    return web.json_response(list(request.app[_backend_key].environments()))


async def _async_status(request: web.Request) -> web.StreamResponse:
    return web.json_response(dict(request.app[_backend_key].async_status()))


async def _openapi_document(request: web.Request) -> web.StreamResponse:
    return web.Response(body=openapi.document_json(), content_type="application/json")


@web.middleware
async def _aws_errors(
    request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
) -> web.StreamResponse:
    """Every failure leaves in AWS's shape, so botocore raises the matching exception class."""
    try:
        return await handler(request)
    except web.HTTPNotFound:
        return aws_error(
            404,
            "UnknownOperationException",
            f"No operation matches {request.method} {request.path}",
            request_id=str(uuid.uuid4()),
        )
    except web.HTTPMethodNotAllowed:
        return aws_error(
            405,
            "UnknownOperationException",
            f"{request.method} is not allowed on {request.path}",
            request_id=str(uuid.uuid4()),
        )
    except web.HTTPException:
        raise
    except Exception as exc:
        if isinstance(exc, (HttpApiError, ApiError)):
            return aws_error(exc.status, exc.error_type, exc.message, request_id=str(uuid.uuid4()), extra=exc.extra)
        log.exception("unexpected error serving %s %s", request.method, request.path)
        return aws_error(500, "ServiceException", f"{type(exc).__name__}: {exc}", request_id=str(uuid.uuid4()))


def create_invoke_app(backend: InvokeBackend) -> web.Application:
    """The Invoke API (Invoke, InvokeWithResponseStream) and the inspection API on one application."""
    # One byte over the sync limit so an oversize body is told apart from a full one.
    app = web.Application(client_max_size=MAX_SYNC_PAYLOAD_BYTES + 1, middlewares=[_aws_errors])
    app[_backend_key] = backend
    app.router.add_post("/2015-03-31/functions/{name}/invocations", _invoke)
    app.router.add_post("/2021-11-15/functions/{name}/response-streaming-invocations", _invoke_with_response_stream)
    app.router.add_get("/_lambda-freeze/environments", _environments)
    app.router.add_get("/_lambda-freeze/async", _async_status)
    app.router.add_get(openapi.DOCUMENT_PATH, _openapi_document)
    return app

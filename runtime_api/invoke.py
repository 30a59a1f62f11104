"""The Invoke API 2015-03-31 (what boto3, the AWS CLI and curl call) and the inspection API beside it."""

from __future__ import annotations

import base64
import json
import logging
import socket
import uuid
from collections.abc import AsyncIterator

import orjson

from . import eventstream
from .control import ControlBackend
from .control import add_routes as add_control_routes
from .errors import HttpApiError, aws_error
from .http import (
    BodyError,
    BodyTooLarge,
    HttpLimits,
    HttpServer,
    MethodNotAllowed,
    NotFound,
    Request,
    Response,
    Router,
    StreamingResponse,
    route_errors,
)
from .protocol import (
    MAX_ASYNC_PAYLOAD_BYTES,
    MAX_SYNC_PAYLOAD_BYTES,
    ApiError,
    InvokeBackend,
    InvokeRequest,
    ResponseChunks,
)

log = logging.getLogger("lambda_freeze.invoke_api")

INVOCATION_TYPES = ("Event", "RequestResponse", "DryRun")
MAX_CLIENT_CONTEXT_BYTES = 3583  # the Invoke API reference: "Up to 3,583 bytes of base64-encoded data"
STREAM_INVOCATION_TYPES = ("RequestResponse", "DryRun")  # InvokeWithResponseStream is synchronous only
OPENAPI_PATH = "/_lambda-freeze/openapi.json"  # where openapi.document() is published (loaded when asked for)


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


async def _read_payload(request: Request, invocation_type: str) -> bytes:
    try:
        raw: bytes | None = await request.read()
    except BodyTooLarge:
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
    request: Request, invocation_types: tuple[str, ...], *, response_stream: bool = False
) -> InvokeRequest:
    """Validate an Invoke or InvokeWithResponseStream call as Lambda does, and read its payload."""
    invocation_type = request.headers.get("x-amz-invocation-type", "RequestResponse")
    if invocation_type not in invocation_types:
        raise HttpApiError(
            400,
            "InvalidParameterValueException",
            f"1 validation error detected: Value '{invocation_type}' at 'invocationType' failed to satisfy "
            f"constraint: Member must satisfy enum value set: [{', '.join(invocation_types)}]",
        )
    log_type = request.headers.get("x-amz-log-type")
    if log_type not in (None, "None", "Tail"):
        raise HttpApiError(
            400,
            "InvalidParameterValueException",
            f"1 validation error detected: Value '{log_type}' at 'logType' failed to satisfy constraint: "
            "Member must satisfy enum value set: [Tail, None]",
        )
    encoding = request.headers.get("content-encoding", "identity").strip().lower()
    if encoding not in ("", "identity"):
        raise HttpApiError(
            415,
            "UnsupportedMediaTypeException",
            f"The payload's Content-Encoding {encoding!r} is not supported: send the JSON document as it is.",
        )
    client_context = request.headers.get("x-amz-client-context")
    if client_context is not None:
        if len(client_context) > MAX_CLIENT_CONTEXT_BYTES:
            raise HttpApiError(
                400,
                "InvalidRequestContentException",
                f"Client context must be at most {MAX_CLIENT_CONTEXT_BYTES} bytes of Base64-encoded data.",
            )
        try:
            if not isinstance(json.loads(base64.b64decode(client_context, validate=True)), dict):
                raise ValueError("not an object")
        except (ValueError, RecursionError):  # RecursionError: JSON nested deeper than the parser goes
            raise HttpApiError(
                400, "InvalidRequestContentException", "Client context must be a valid Base64-encoded JSON object."
            ) from None
    payload = await _read_payload(request, invocation_type)
    return InvokeRequest(
        function=request.params["name"],
        qualifier=request.query.get("Qualifier"),
        payload=payload,
        invocation_type=invocation_type,
        log_type="Tail" if log_type == "Tail" else None,
        client_context=client_context,
        response_stream=response_stream,
    )


class InvokeApiServer:
    """The Invoke API (Invoke, InvokeWithResponseStream) and the inspection API on one listening socket.

    Lifecycle: ``await listen(sock)`` → serve → ``await close(grace_s)``.
    """

    def __init__(
        self, backend: InvokeBackend, control: ControlBackend | None = None, limits: HttpLimits | None = None
    ):
        self._backend = backend
        router = Router()
        if control is not None:
            add_control_routes(router, control)
        router.add("POST", "/2015-03-31/functions/{name}/invocations", self._invoke)
        router.add("POST", "/2021-11-15/functions/{name}/response-streaming-invocations", self._invoke_stream)
        router.add("GET", "/_lambda-freeze/environments", self._environments)
        router.add("GET", "/_lambda-freeze/async", self._async_status)
        router.add("GET", "/_lambda-freeze/functions", self._functions)
        router.add("GET", OPENAPI_PATH, self._openapi_document)
        self.router = router
        # One byte over the sync limit so an oversize body is told apart from a full one.
        self._http = HttpServer(
            route_errors(router, _render_error),
            max_body=MAX_SYNC_PAYLOAD_BYTES + 1,
            error_response=lambda status, message: aws_error(
                status, _ERROR_TYPES.get(status, "InvalidRequestContentException"), message, request_id=_new_id()
            ),
            limits=limits,
        )

    async def listen(self, sock: socket.socket) -> None:
        await self._http.listen(sock)

    async def close(self, grace_s: float = 1.0) -> None:
        """Stop accepting; calls in flight get ``grace_s`` to be answered, then are cancelled."""
        await self._http.close(grace_s)

    async def _invoke(self, request: Request) -> Response:
        result = await self._backend.invoke(await _invoke_request(request, INVOCATION_TYPES))
        headers = {"x-amzn-RequestId": result.request_id, **result.headers}
        if result.status == 200:
            headers["X-Amz-Executed-Version"] = result.executed_version
        if result.function_error:
            headers["X-Amz-Function-Error"] = result.function_error
        if result.log_tail is not None:
            headers["X-Amz-Log-Result"] = base64.b64encode(result.log_tail).decode()
        if result.status == 204:
            return Response(204, headers=headers)
        return Response(result.status, result.payload, headers=headers, content_type=result.content_type)

    async def _invoke_stream(self, request: Request) -> Response | StreamingResponse:
        """InvokeWithResponseStream: 200 once the function answers, then its response as an event stream, each
        piece as it arrives (``PayloadChunk`` events), closed by an ``InvokeComplete`` event that carries any error
        and the log tail. Errors before the function runs (unknown function, throttling, bad request) are ordinary
        AWS errors."""
        invoke = await _invoke_request(request, STREAM_INVOCATION_TYPES, response_stream=True)
        result = await self._backend.invoke(invoke)
        headers = {"x-amzn-RequestId": result.request_id, **result.headers}
        if result.stream is None:  # DryRun
            return Response(result.status, headers=headers)
        headers["X-Amz-Executed-Version"] = result.executed_version
        headers["Content-Type"] = eventstream.CONTENT_TYPE
        return StreamingResponse(200, headers, _event_stream(result.stream, result.request_id))

    async def _environments(self, request: Request) -> Response:
        return _json(list(self._backend.environments()))

    async def _functions(self, request: Request) -> Response:
        return _json(list(self._backend.functions()))

    async def _async_status(self, request: Request) -> Response:
        return _json(dict(self._backend.async_status()))

    async def _openapi_document(self, request: Request) -> Response:
        from . import openapi  # its YAML and importlib.resources load when the document is asked for

        return Response(200, openapi.document_json(), content_type="application/json")


async def _event_stream(stream: ResponseChunks, request_id: str) -> AsyncIterator[bytes]:
    ended = False
    try:
        async for chunk in stream:
            yield eventstream.payload_chunk(chunk)
        end = await stream.end()
        ended = True
        log_result = base64.b64encode(end.log_tail).decode() if end.log_tail is not None else None
        yield eventstream.invoke_complete(end.error_code, end.error_details, log_result)
    finally:
        if not ended:
            log.info("the caller of %s went away before its response stream ended", request_id)
            stream.abandon()


def _json(document: object) -> Response:
    return Response(200, orjson.dumps(document, default=str), content_type="application/json")


def _new_id() -> str:
    return str(uuid.uuid4())


_ERROR_TYPES = {
    404: "UnknownOperationException",
    405: "UnknownOperationException",
    408: "RequestTimeoutException",
    413: "RequestTooLargeException",
    414: "RequestHeaderFieldsTooLargeException",
    431: "RequestHeaderFieldsTooLargeException",
    500: "ServiceException",
    501: "NotImplementedException",
    503: "ServiceUnavailableException",
    505: "HttpVersionNotSupportedException",
}


def _render_error(request: Request, exc: Exception) -> Response | None:
    """Every failure leaves in AWS's shape, so botocore raises the matching exception class."""
    if isinstance(exc, (HttpApiError, ApiError)):
        return aws_error(exc.status, exc.error_type, exc.message, request_id=_new_id(), extra=exc.extra)
    if isinstance(exc, NotFound):
        message = f"No operation matches {request.method} {request.path}"
        return aws_error(404, "UnknownOperationException", message, request_id=_new_id())
    if isinstance(exc, MethodNotAllowed):
        message = f"{request.method} is not allowed on {request.path}"
        return aws_error(405, "UnknownOperationException", message, request_id=_new_id())
    if isinstance(exc, BodyError):
        message = f"the request body broke off: {exc}"
        return aws_error(400, "InvalidRequestContentException", message, request_id=_new_id())
    log.error("unexpected error serving %s %s", request.method, request.path, exc_info=exc)
    return aws_error(500, "ServiceException", f"{type(exc).__name__}: {exc}", request_id=_new_id())

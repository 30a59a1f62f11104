"""The Runtime API 2018-06-01: one endpoint (its own 127.0.0.1 port) per execution environment.

All endpoints share one aiohttp application; the listening port a request arrived on says which environment it
belongs to, so a runtime can only ever reach its own environment.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import json
import logging
import socket
import uuid
from collections.abc import Awaitable, Callable

from aiohttp import web
from aiohttp.http_exceptions import HttpProcessingError

from .errors import runtime_error
from .protocol import MAX_RESPONSE_BYTES, ApiError, NextEvent, ResponseSink, RuntimeBackend
from .trailers import TrailerStore, TrailerTapSite

log = logging.getLogger("lambda_freeze.runtime_api")

PREFIX = "/2018-06-01/runtime"
EXTENSION_PREFIX = "/2020-01-01/extension"
ERROR_TYPE_HEADER = "Lambda-Runtime-Function-Error-Type"  # on /error; on a streamed /response, a trailer
ERROR_BODY_TRAILER = "Lambda-Runtime-Function-Error-Body"  # base64 of the error body
RESPONSE_MODE_HEADER = "Lambda-Runtime-Function-Response-Mode"
STREAMING = "streaming"
EXTENSION_ID_HEADER = "Lambda-Extension-Identifier"
EXTENSION_ERROR_TYPE_HEADER = "Lambda-Extension-Function-Error-Type"

_backends_key = web.AppKey("backends", dict)
_trailers_key = web.AppKey("trailers", TrailerStore)


def _backend(request: web.Request) -> RuntimeBackend:
    sockname = request.transport.get_extra_info("sockname") if request.transport else None
    backend: RuntimeBackend | None = request.app[_backends_key].get(sockname[1]) if sockname else None
    if backend is None:
        raise web.HTTPGone(text="this execution environment has ended")
    return backend


Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def _rendering_api_errors(handler: Handler) -> Handler:
    async def wrapped(request: web.Request) -> web.StreamResponse:
        try:
            return await handler(request)
        except web.HTTPException:
            raise
        except Exception as exc:
            if isinstance(exc, ApiError):
                return runtime_error(exc.status, exc.error_type, exc.message)
            raise

    return wrapped


def _next_response(event: NextEvent) -> web.Response:
    headers = {
        "Lambda-Runtime-Aws-Request-Id": event.request_id,
        "Lambda-Runtime-Deadline-Ms": str(event.deadline_ms),
        "Lambda-Runtime-Invoked-Function-Arn": event.function_arn,
        "Lambda-Runtime-Trace-Id": event.trace_id,
    }
    if event.client_context is not None:
        headers["Lambda-Runtime-Client-Context"] = event.client_context
    if event.cognito_identity is not None:
        headers["Lambda-Runtime-Cognito-Identity"] = event.cognito_identity
    return web.Response(body=event.payload, headers=headers, content_type="application/json")


_ACCEPTED = b'{"status":"OK"}'


def _accepted() -> web.Response:
    return web.Response(status=202, body=_ACCEPTED, content_type="application/json")


@_rendering_api_errors
async def _next(request: web.Request) -> web.StreamResponse:
    event = await _backend(request).next_invocation()
    return _next_response(event)


@_rendering_api_errors
async def _response(request: web.Request) -> web.StreamResponse:
    backend = _backend(request)
    request_id = request.match_info["request_id"]
    mode = request.headers.get(RESPONSE_MODE_HEADER)
    if mode == STREAMING:
        sink = backend.post_response_stream(request_id, request.headers.get("Content-Type"))
        return await _stream_response(request, sink)
    if mode is not None:  # as RAPID does: the invocation fails, and the runtime is told why
        error_type = "Runtime.InvalidResponseModeHeader"
        error = {"errorType": error_type, "errorMessage": f"{RESPONSE_MODE_HEADER} must be {STREAMING}, not {mode}"}
        backend.post_error(request_id, json.dumps(error).encode(), error_type)
        return runtime_error(400, "InvalidFunctionResponseMode", "Invalid function response mode")
    try:
        body = await request.read()
    except web.HTTPRequestEntityTooLarge:
        backend.post_response_too_large(request_id, request.content_length)
        return runtime_error(
            413,
            "RequestEntityTooLarge",
            f"Exceeded maximum allowed payload size ({MAX_RESPONSE_BYTES} bytes).",
        )
    backend.post_response(request_id, body, request.headers.get("Content-Type"))
    return _accepted()


async def _stream_response(request: web.Request, sink: ResponseSink) -> web.StreamResponse:
    """A streamed ``/response``: each piece of the chunked body goes on as it arrives; the trailers, read once
    the body has ended, say whether the function failed mid-stream."""
    try:
        async for chunk in request.content.iter_any():
            if not await sink.write(chunk):
                return runtime_error(
                    413, "RequestEntityTooLarge", f"Exceeded maximum allowed payload size ({sink.limit_bytes} bytes)."
                )
    except asyncio.CancelledError:
        sink.truncated("the request was cancelled")
        raise
    except (ConnectionError, HttpProcessingError, web.RequestPayloadError) as exc:
        sink.truncated(f"{type(exc).__name__}: {exc}")
        return runtime_error(400, "TruncatedHTTPRequest", "HTTP request detected as truncated")
    trailers = request.app[_trailers_key].take(request.raw_path)
    error_type = trailers.get(ERROR_TYPE_HEADER) or None
    encoded_body = trailers.get(ERROR_BODY_TRAILER)
    error_body = None
    if encoded_body:
        try:
            error_body = base64.b64decode(encoded_body, validate=True)
        except binascii.Error:
            error_body = encoded_body.encode()  # not base64 after all: passed on as it came
    sink.close(error_type, error_body)
    return _accepted()


@_rendering_api_errors
async def _error(request: web.Request) -> web.StreamResponse:
    backend = _backend(request)
    body = await request.read()
    backend.post_error(request.match_info["request_id"], body, request.headers.get(ERROR_TYPE_HEADER))
    return _accepted()


@_rendering_api_errors
async def _init_error(request: web.Request) -> web.StreamResponse:
    backend = _backend(request)
    body = await request.read()
    backend.post_init_error(body, request.headers.get(ERROR_TYPE_HEADER))
    return _accepted()


@_rendering_api_errors
async def _extension_register(request: web.Request) -> web.StreamResponse:
    backend = _backend(request)
    try:
        document = json.loads(await request.read() or b"{}")
    except ValueError:
        return runtime_error(400, "InvalidRequestFormat", "the register body is not JSON")
    events = document.get("events") if isinstance(document, dict) else None
    identifier, body = backend.register_extension(request.headers.get("Lambda-Extension-Name"), events)
    return web.json_response(dict(body), headers={EXTENSION_ID_HEADER: identifier})


@_rendering_api_errors
async def _extension_next(request: web.Request) -> web.StreamResponse:
    event = await _backend(request).next_extension_event(request.headers.get(EXTENSION_ID_HEADER))
    return web.json_response(dict(event), headers={"Lambda-Extension-Event-Identifier": str(uuid.uuid4())})


def _extension_error(kind: str) -> Callable[[web.Request], Awaitable[web.StreamResponse]]:
    @_rendering_api_errors
    async def handler(request: web.Request) -> web.StreamResponse:
        backend = _backend(request)
        body = await request.read()
        backend.extension_error(
            request.headers.get(EXTENSION_ID_HEADER), kind, body, request.headers.get(EXTENSION_ERROR_TYPE_HEADER)
        )
        return _accepted()

    return handler


class RuntimeEndpoint:
    """One environment's listening socket; ``address`` is what ``AWS_LAMBDA_RUNTIME_API`` is set to."""

    def __init__(self, server: RuntimeApiServer, site: web.BaseSite, port: int, host: str):
        self._server = server
        self._site = site
        self.port = port
        self.address = f"{host}:{port}"

    async def close(self) -> None:
        """Stop accepting the runtime's connections; requests already in flight answer 410."""
        self._server._app[_backends_key].pop(self.port, None)
        await self._site.stop()


class RuntimeApiServer:
    """Serves every environment's Runtime API endpoint from one aiohttp application.

    Lifecycle: ``await start()`` → ``await open_endpoint(backend)`` per environment → ``await close()``.
    """

    def __init__(self, host: str = "127.0.0.1"):
        self._host = host
        self._app = web.Application(client_max_size=MAX_RESPONSE_BYTES)
        self._app[_backends_key] = {}
        self._app[_trailers_key] = TrailerStore()
        self._app.router.add_get(f"{PREFIX}/invocation/next", _next)
        self._app.router.add_post(f"{PREFIX}/invocation/{{request_id}}/response", _response)
        self._app.router.add_post(f"{PREFIX}/invocation/{{request_id}}/error", _error)
        self._app.router.add_post(f"{PREFIX}/init/error", _init_error)
        self._app.router.add_post(f"{EXTENSION_PREFIX}/register", _extension_register)
        self._app.router.add_get(f"{EXTENSION_PREFIX}/event/next", _extension_next)
        self._app.router.add_post(f"{EXTENSION_PREFIX}/init/error", _extension_error("init"))
        self._app.router.add_post(f"{EXTENSION_PREFIX}/exit/error", _extension_error("exit"))
        self._runner = web.AppRunner(self._app, handle_signals=False, access_log=None, shutdown_timeout=0.5)
        self._started = False

    async def start(self) -> None:
        await self._runner.setup()
        self._started = True

    async def open_endpoint(self, backend: RuntimeBackend) -> RuntimeEndpoint:
        if not self._started:
            raise RuntimeError("RuntimeApiServer.start() must be awaited before open_endpoint()")
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((self._host, 0))
        port = sock.getsockname()[1]
        site = TrailerTapSite(self._runner, sock, self._app[_trailers_key])
        await site.start()
        self._app[_backends_key][port] = backend
        return RuntimeEndpoint(self, site, port, self._host)

    async def close(self) -> None:
        if self._started:
            self._app[_backends_key].clear()
            await self._runner.cleanup()
            self._started = False

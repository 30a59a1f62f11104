"""The Runtime API 2018-06-01: one endpoint (its own 127.0.0.1 port) per execution environment.

All endpoints share one HTTP server; the listening port a request arrived on says which environment it belongs to,
and a connection made by another environment's processes is refused (``peers``), so a runtime can only ever drive
its own environment.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import dataclasses
import json
import logging
import socket
import uuid

from .errors import runtime_error
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
from .peers import held_by, socket_inode
from .protocol import MAX_RESPONSE_BYTES, ApiError, NextEvent, ResponseSink, RuntimeBackend

log = logging.getLogger("lambda_freeze.runtime_api")

PREFIX = "/2018-06-01/runtime"
EXTENSION_PREFIX = "/2020-01-01/extension"
ERROR_TYPE_HEADER = "Lambda-Runtime-Function-Error-Type"  # on /error; on a streamed /response, a trailer
ERROR_BODY_TRAILER = "Lambda-Runtime-Function-Error-Body"  # base64 of the error body
RESPONSE_MODE_HEADER = "Lambda-Runtime-Function-Response-Mode"
STREAMING = "streaming"
EXTENSION_ID_HEADER = "Lambda-Extension-Identifier"
EXTENSION_ERROR_TYPE_HEADER = "Lambda-Extension-Function-Error-Type"

_ERROR_TYPE = ERROR_TYPE_HEADER.lower()
_ERROR_BODY = ERROR_BODY_TRAILER.lower()
_RESPONSE_MODE = RESPONSE_MODE_HEADER.lower()
_EXTENSION_ID = EXTENSION_ID_HEADER.lower()
_EXTENSION_ERROR_TYPE = EXTENSION_ERROR_TYPE_HEADER.lower()
_JSON = "application/json"
_MAX_EXTENSION_NAME_BYTES = 255  # an external extension's name is its file name in /opt/extensions (NAME_MAX)


class _Gone(Exception):
    """The request came to an endpoint whose environment has ended."""


def _next_response(event: NextEvent) -> Response:
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
    return Response(200, event.payload, headers=headers, content_type=_JSON)


_ACCEPTED = b'{"status":"OK"}'


def _accepted() -> Response:
    return Response(202, _ACCEPTED, content_type=_JSON)


def _too_large(limit: int) -> Response:
    return runtime_error(413, "RequestEntityTooLarge", f"Exceeded maximum allowed payload size ({limit} bytes).")


class RuntimeApiServer:
    """Serves every environment's Runtime API endpoint from one HTTP server.

    Lifecycle: ``await start()`` → ``await open_endpoint(backend)`` per environment → ``await close()``.

    A runtime's kept-alive connection idles while its handler runs, for as long as the function's timeout, or
    frozen mid-handler for longer: the Runtime API has no idle timeout.
    """

    def __init__(self, host: str = "127.0.0.1", limits: HttpLimits | None = None):
        self._host = host
        self._backends: dict[int, RuntimeBackend] = {}
        router = Router()
        router.add("GET", f"{PREFIX}/invocation/next", self._next)
        router.add("POST", f"{PREFIX}/invocation/{{request_id}}/response", self._response)
        router.add("POST", f"{PREFIX}/invocation/{{request_id}}/error", self._error)
        router.add("POST", f"{PREFIX}/init/error", self._init_error)
        router.add("POST", f"{EXTENSION_PREFIX}/register", self._extension_register)
        router.add("GET", f"{EXTENSION_PREFIX}/event/next", self._extension_next)
        router.add("POST", f"{EXTENSION_PREFIX}/init/error", self._extension_init_error)
        router.add("POST", f"{EXTENSION_PREFIX}/exit/error", self._extension_exit_error)
        self.router = router
        self._http = HttpServer(
            route_errors(router, self._render_error),
            max_body=MAX_RESPONSE_BYTES,
            error_response=lambda status, message: runtime_error(status, _error_type(status), message),
            limits=dataclasses.replace(limits or HttpLimits(), idle_timeout_s=None),
            vet=self._vet,
        )
        self._started = False

    async def start(self) -> None:
        self._started = True

    async def open_endpoint(self, backend: RuntimeBackend) -> RuntimeEndpoint:
        if not self._started:
            raise RuntimeError("RuntimeApiServer.start() must be awaited before open_endpoint()")
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((self._host, 0))
        port = sock.getsockname()[1]
        listener = await self._http.listen(sock)
        self._backends[port] = backend
        return RuntimeEndpoint(self, listener, port, self._host)

    async def close(self) -> None:
        if self._started:
            self._backends.clear()
            await self._http.close(grace_s=0.5)
            self._started = False

    def _vet(self, peer: object, sockname: object) -> Response | None:
        """Refuse a connection made by another environment's processes. Its own runtime's (the usual case) is
        recognised first; a local process outside every environment (curl, a test) is let in, as before."""
        if not (isinstance(peer, tuple) and isinstance(sockname, tuple)):
            return None
        backend = self._backends.get(sockname[1])
        if backend is None:
            return None  # the environment has ended: its requests answer 410
        try:
            inode = socket_inode(peer, sockname)
        except OSError:
            return None  # no sock_diag here (not Linux): nothing to tell the processes apart with
        if inode is None or held_by(inode, backend.process_ids()):
            return None
        for port, other in list(self._backends.items()):
            if other is not backend and held_by(inode, other.process_ids()):
                log.warning(
                    "refused a connection to the Runtime API on port %d from the environment on port %d",
                    sockname[1],
                    port,
                )
                return runtime_error(403, "AccessDenied", "this Runtime API belongs to another execution environment")
        return None

    # ------------------------------------------------------------------------------------------- handlers
    def _backend(self, request: Request) -> RuntimeBackend:
        backend = self._backends.get(request.local_port)
        if backend is None:
            raise _Gone
        return backend

    @staticmethod
    def _render_error(request: Request, exc: Exception) -> Response | None:
        if isinstance(exc, ApiError):
            return runtime_error(exc.status, exc.error_type, exc.message)
        if isinstance(exc, _Gone):
            return runtime_error(410, "EnvironmentGone", "this execution environment has ended")
        if isinstance(exc, NotFound):
            return runtime_error(404, "NotFound", f"no such endpoint: {request.path}")
        if isinstance(exc, MethodNotAllowed):
            return runtime_error(405, "MethodNotAllowed", f"{request.method} is not allowed on {request.path}")
        if isinstance(exc, BodyTooLarge):
            return _too_large(MAX_RESPONSE_BYTES)
        if isinstance(exc, BodyError):
            return runtime_error(400, "TruncatedHTTPRequest", "HTTP request detected as truncated")
        return None

    async def _next(self, request: Request) -> Response:
        request.cancel_on_disconnect = True  # a `next` whose connection closed waits for nothing any more
        event = await self._backend(request).next_invocation()
        return _next_response(event)

    async def _response(self, request: Request) -> Response | StreamingResponse:
        backend = self._backend(request)
        request_id = request.params["request_id"]
        headers = request.headers
        mode = headers.get(_RESPONSE_MODE)
        if mode == STREAMING:
            sink = backend.post_response_stream(request_id, headers.get("content-type"))
            return await _stream_response(request, sink)
        if mode is not None:  # as RAPID does: the invocation fails, and the runtime is told why
            error_type = "Runtime.InvalidResponseModeHeader"
            message = f"{RESPONSE_MODE_HEADER} must be {STREAMING}, not {mode}"
            error = {"errorType": error_type, "errorMessage": message}
            backend.post_error(request_id, json.dumps(error).encode(), error_type)
            return runtime_error(400, "InvalidFunctionResponseMode", "Invalid function response mode")
        try:
            body = await request.read()
        except BodyTooLarge as exc:
            backend.post_response_too_large(request_id, exc.size)
            return _too_large(MAX_RESPONSE_BYTES)
        backend.post_response(request_id, body, headers.get("content-type"))
        return _accepted()

    async def _error(self, request: Request) -> Response:
        backend = self._backend(request)
        body = await request.read()
        backend.post_error(request.params["request_id"], body, request.headers.get(_ERROR_TYPE))
        return _accepted()

    async def _init_error(self, request: Request) -> Response:
        backend = self._backend(request)
        body = await request.read()
        backend.post_init_error(body, request.headers.get(_ERROR_TYPE))
        return _accepted()

    async def _extension_register(self, request: Request) -> Response:
        backend = self._backend(request)
        try:
            document = json.loads(await request.read() or b"{}")
        except ValueError:
            return runtime_error(400, "InvalidRequestFormat", "the register body is not JSON")
        events = document.get("events") if isinstance(document, dict) else None
        name = request.headers.get("lambda-extension-name")
        if name is not None:
            name, problem = _extension_name(name)
            if problem is not None:
                return runtime_error(403, "Extension.InvalidExtensionName", problem)
        identifier, body = backend.register_extension(name, events)
        return Response(
            200, json.dumps(dict(body)).encode(), headers={EXTENSION_ID_HEADER: identifier}, content_type=_JSON
        )

    async def _extension_next(self, request: Request) -> Response:
        request.cancel_on_disconnect = True
        event = await self._backend(request).next_extension_event(request.headers.get(_EXTENSION_ID))
        return Response(
            200,
            json.dumps(dict(event)).encode(),
            headers={"Lambda-Extension-Event-Identifier": str(uuid.uuid4())},
            content_type=_JSON,
        )

    async def _extension_init_error(self, request: Request) -> Response:
        return await self._extension_error(request, "init")

    async def _extension_exit_error(self, request: Request) -> Response:
        return await self._extension_error(request, "exit")

    async def _extension_error(self, request: Request, kind: str) -> Response:
        backend = self._backend(request)
        body = await request.read()
        headers = request.headers
        backend.extension_error(headers.get(_EXTENSION_ID), kind, body, headers.get(_EXTENSION_ERROR_TYPE))
        return _accepted()


async def _stream_response(request: Request, sink: ResponseSink) -> Response:
    """A streamed ``/response``: each piece of the chunked body goes on as it arrives; the trailers, read once
    the body has ended, say whether the function failed mid-stream."""
    try:
        async for chunk in request.stream():
            if not await sink.write(chunk):
                return _too_large(sink.limit_bytes)
    except asyncio.CancelledError:
        sink.truncated("the request was cancelled")
        raise
    except BodyError as exc:
        sink.truncated(f"{type(exc.__cause__ or exc).__name__}: {exc}")
        return runtime_error(400, "TruncatedHTTPRequest", "HTTP request detected as truncated")
    trailers = request.trailers
    error_type = trailers.get(_ERROR_TYPE) or None
    encoded_body = trailers.get(_ERROR_BODY)
    error_body = None
    if encoded_body:
        try:
            error_body = base64.b64decode(encoded_body, validate=True)
        except binascii.Error:
            error_body = encoded_body.encode()  # not base64 after all: passed on as it came
    sink.close(error_type, error_body)
    return _accepted()


def _extension_name(header: str) -> tuple[str, str | None]:
    """The name as the extension sent it (UTF-8), and what is wrong with it, if anything: an external extension's
    name is the file name it was started from, so it is one path component, of at most 255 bytes."""
    raw = header.encode("latin-1")  # header values are read as latin-1: these are the bytes that came
    try:
        name = raw.decode("utf-8")
    except UnicodeDecodeError:
        return header, "Lambda-Extension-Name must be UTF-8"
    if len(raw) > _MAX_EXTENSION_NAME_BYTES:
        return name, f"Lambda-Extension-Name must be at most {_MAX_EXTENSION_NAME_BYTES} bytes"
    if name in (".", "..") or "/" in name or any(ord(c) < 32 or ord(c) == 127 for c in name):
        return name, "Lambda-Extension-Name must be a file name: no '/', no control characters, not . or .."
    return name, None


def _error_type(status: int) -> str:
    return {
        400: "InvalidRequest",
        403: "AccessDenied",
        408: "RequestTimeout",
        413: "RequestEntityTooLarge",
        414: "RequestHeaderFieldsTooLarge",
        431: "RequestHeaderFieldsTooLarge",
        501: "NotImplemented",
        503: "ServiceUnavailable",
        505: "HTTPVersionNotSupported",
    }.get(status, "InternalError" if status >= 500 else "InvalidRequest")


class RuntimeEndpoint:
    """One environment's listening socket; ``address`` is what ``AWS_LAMBDA_RUNTIME_API`` is set to."""

    def __init__(self, server: RuntimeApiServer, listener: asyncio.Server, port: int, host: str):
        self._server = server
        self._listener = listener
        self.port = port
        self.address = f"{host}:{port}"

    async def close(self) -> None:
        """Stop accepting the runtime's connections; requests already in flight answer 410."""
        self._server._backends.pop(self.port, None)
        self._server._http.stop_listening(self._listener)

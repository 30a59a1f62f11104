"""What the HTTP surfaces need from the engine, declared as Protocols (the engine implements them)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Protocol, runtime_checkable

# Lambda's documented payload limits.
MAX_SYNC_PAYLOAD_BYTES = 6 * 1024 * 1024  # 6,291,456: Invoke request, RequestResponse
MAX_ASYNC_PAYLOAD_BYTES = 1024 * 1024  # 1 MB: Invoke request, Event
MAX_RESPONSE_BYTES = 6 * 1024 * 1024 + 100  # 6,291,556: what a runtime may post as a response
# A streamed response (Lambda-Runtime-Function-Response-Mode: streaming) to InvokeWithResponseStream: 200 MB since
# July 2025 (20 MB before); beyond it the stream ends with Function.ResponseSizeTooLarge.
MAX_STREAMED_RESPONSE_BYTES = 200 * 1024 * 1024


@runtime_checkable
class ApiError(Protocol):
    """An error the engine raises that an HTTP surface renders as it is.

    ``error_type`` is the Lambda error type (``ResourceNotFoundException``, ``InvalidRequestID``, ...), ``status``
    the HTTP status Lambda answers it with, ``message`` the text, ``extra`` further body fields (e.g. ``Reason``).
    """

    error_type: str
    status: int
    message: str
    extra: Mapping[str, str]


@dataclass(frozen=True, slots=True)
class NextEvent:
    """One invocation event as ``GET /runtime/invocation/next`` hands it to a runtime."""

    request_id: str
    payload: bytes
    deadline_ms: int  # Unix epoch, milliseconds
    function_arn: str
    trace_id: str
    client_context: str | None = None
    cognito_identity: str | None = None


class RuntimeBackend(Protocol):
    """One execution environment, as its Runtime API endpoint sees it.

    Every method validates first and changes state only when the call is allowed; otherwise it raises an
    ``ApiError`` and the environment is unchanged.
    """

    async def next_invocation(self) -> NextEvent: ...

    def post_response(self, request_id: str, body: bytes, content_type: str | None) -> None: ...

    def post_response_too_large(self, request_id: str, size_bytes: int | None) -> None: ...

    def post_response_stream(self, request_id: str, content_type: str | None) -> ResponseSink:
        """A ``/response`` in streaming mode begins; its body goes to the returned sink as it arrives."""
        ...

    def post_error(self, request_id: str, body: bytes, error_type: str | None) -> None: ...

    def post_init_error(self, body: bytes, error_type: str | None) -> None: ...

    def process_ids(self) -> Sequence[int]:
        """Every process of the environment (runtime, extensions, their children): the endpoint refuses
        connections that another environment's processes make."""
        ...

    # Extensions API 2020-01-01, on the same endpoint
    def register_extension(self, name: str | None, events: object) -> tuple[str, Mapping[str, str]]:
        """Returns the extension's identifier and the register response body."""
        ...

    async def next_extension_event(self, identifier: str | None) -> Mapping[str, object]: ...

    def extension_error(self, identifier: str | None, kind: str, body: bytes, error_type: str | None) -> None:
        """``kind`` is "init" or "exit"."""
        ...


class ResponseSink(Protocol):
    """A streamed response in flight: the ``/response`` handler feeds it the chunked body as it arrives."""

    limit_bytes: int

    async def write(self, chunk: bytes) -> bool:
        """Pass a chunk on, waiting while the caller is behind. False once the response is over ``limit_bytes``:
        the sink has ended it with ``Function.ResponseSizeTooLarge``; the handler stops reading and answers 413."""
        ...

    def close(self, error_type: str | None, error_body: bytes | None) -> None:
        """The body ended; with the error trailers' type and (base64-decoded) body when the function failed."""
        ...

    def truncated(self, reason: str) -> None:
        """The body broke off: the runtime's connection dropped mid-body."""
        ...


@dataclass(frozen=True, slots=True)
class InvokeRequest:
    """An ``Invoke`` call as the HTTP surface received and validated it."""

    function: str  # name, partial or full ARN, optionally with ``:qualifier``
    qualifier: str | None
    payload: bytes
    invocation_type: str  # RequestResponse | Event | DryRun
    log_type: str | None  # None | "Tail"
    client_context: str | None  # base64 JSON, as sent in X-Amz-Client-Context
    response_stream: bool = False  # InvokeWithResponseStream: the result carries a ``ResponseChunks``


@dataclass(frozen=True, slots=True)
class StreamEnd:
    """How a streamed response ended: the fields of its closing ``InvokeComplete`` event."""

    error_code: str | None = None  # the Lambda error type, when the invocation failed
    error_details: str | None = None  # the error body
    log_tail: bytes | None = None  # the last 4 KB of the invocation's log, when asked for


class ResponseChunks(Protocol):
    """The answer to ``InvokeWithResponseStream`` as it arrives: the payload chunks, then how it ended."""

    def __aiter__(self) -> AsyncIterator[bytes]: ...

    async def end(self) -> StreamEnd:
        """After the last chunk: the error, if any, and the log tail (once END and REPORT are written)."""
        ...

    def abandon(self) -> None:
        """The caller went away: what the function still writes is dropped."""
        ...


@dataclass(slots=True)
class InvokeResult:
    """What the engine answers an ``Invoke`` with."""

    request_id: str
    status: int = 200
    payload: bytes = b""
    function_error: str | None = None  # "Unhandled" when the function failed
    log_tail: bytes | None = None  # the last 4 KB of the invocation's log, when asked for
    executed_version: str = "$LATEST"
    content_type: str = "application/json"
    headers: dict[str, str] = field(default_factory=dict)
    stream: ResponseChunks | None = None  # InvokeWithResponseStream only


class InvokeBackend(Protocol):
    """The engine as the Invoke API and the inspection API see it."""

    async def invoke(self, request: InvokeRequest) -> InvokeResult: ...

    def environments(self) -> Sequence[Mapping[str, object]]: ...

    def functions(self) -> Sequence[Mapping[str, object]]:
        """Each function with its API routes and its function URL."""
        ...

    def async_status(self) -> Mapping[str, object]:
        """Per function: queued, retrying, in flight, delivered, failed; and the on-failure records."""
        ...

"""What the HTTP surfaces need from the engine, declared as Protocols (the engine implements them)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Protocol, runtime_checkable

# Lambda's documented payload limits.
MAX_SYNC_PAYLOAD_BYTES = 6 * 1024 * 1024  # 6,291,456: Invoke request, RequestResponse
MAX_ASYNC_PAYLOAD_BYTES = 1024 * 1024  # 1 MB: Invoke request, Event
MAX_RESPONSE_BYTES = 6 * 1024 * 1024 + 100  # 6,291,556: what a runtime may post as a response


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

    def post_error(self, request_id: str, body: bytes, error_type: str | None) -> None: ...

    def post_init_error(self, body: bytes, error_type: str | None) -> None: ...

    # Extensions API 2020-01-01, on the same endpoint
    def register_extension(self, name: str | None, events: object) -> tuple[str, Mapping[str, str]]:
        """Returns the extension's identifier and the register response body."""
        ...

    async def next_extension_event(self, identifier: str | None) -> Mapping[str, object]: ...

    def extension_error(self, identifier: str | None, kind: str, body: bytes, error_type: str | None) -> None:
        """``kind`` is "init" or "exit"."""
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


class InvokeBackend(Protocol):
    """The engine as the Invoke API and the inspection API see it."""

    async def invoke(self, request: InvokeRequest) -> InvokeResult: ...

    def environments(self) -> Sequence[Mapping[str, object]]: ...

    def async_status(self) -> Mapping[str, object]:
        """Per function: queued, retrying, in flight, delivered, failed; and the on-failure records."""
        ...

"""One invocation: its event, its outcome (what the caller gets) and its log, from arrival to REPORT."""

from __future__ import annotations

import asyncio
import base64
import json
import secrets
import time
import uuid
from dataclasses import dataclass, field

from .leaks import Leak
from .logs import InvocationLog


@dataclass(frozen=True, slots=True)
class Outcome:
    """What the caller is answered: the response payload, or an error body with its Lambda error type."""

    payload: bytes
    error_type: str | None = None
    content_type: str = "application/json"

    @property
    def ok(self) -> bool:
        return self.error_type is None

    @classmethod
    def error(cls, error_type: str, message: str, *, request_id: str | None = None) -> Outcome:
        text = f"RequestId: {request_id} Error: {message}" if request_id else message
        return cls(json.dumps({"errorType": error_type, "errorMessage": text}).encode(), error_type)

    @classmethod
    def from_runtime_error(cls, body: bytes, header_type: str | None) -> Outcome:
        """A runtime's ``/error`` or ``/init/error`` body; the real clients put the type in the body, not the header."""
        try:
            parsed = json.loads(body)
        except ValueError:
            parsed = None
        if isinstance(parsed, dict):
            error_type = str(parsed.get("errorType") or header_type or "Unhandled")
            return cls(body, error_type)
        error_type = header_type or "Unhandled"
        message = body.decode("utf-8", "replace")
        return cls(json.dumps({"errorType": error_type, "errorMessage": message}).encode(), error_type)

    @property
    def message(self) -> str:
        try:
            return str(json.loads(self.payload).get("errorMessage", ""))
        except (ValueError, AttributeError):
            return ""


def new_trace_id() -> str:
    return f"Root=1-{int(time.time()):08x}-{secrets.token_hex(12)};Parent={secrets.token_hex(8)};Sampled=0"


def decode_client_context(value: str | None) -> str | None:
    """X-Amz-Client-Context is base64 JSON; the runtime receives the JSON text itself."""
    if value is None:
        return None
    return base64.b64decode(value).decode("utf-8", "replace")


@dataclass(eq=False)
class Invocation:
    payload: bytes
    function_arn: str
    client_context: str | None = None
    request_id: str = field(default_factory=lambda: str(uuid.uuid4()))
    trace_id: str = field(default_factory=new_trace_id)
    received_s: float = field(default_factory=time.monotonic)
    log: InvocationLog = field(default_factory=InvocationLog)
    # Set by the environment that runs it:
    env_id: str | None = None
    started_s: float | None = None  # START (event handed over, or INIT begun for a retried INIT)
    deadline_s: float | None = None  # monotonic
    deadline_ms: int = 0  # epoch, for Lambda-Runtime-Deadline-Ms
    cold_start: bool = False
    status: str | None = None  # REPORT's Status: timeout | error
    leaks: list[Leak] = field(default_factory=list)
    attempt: int = 1  # asynchronous invocations: which delivery this is
    result: asyncio.Future[Outcome] = field(init=False)
    finished: asyncio.Future[None] = field(init=False)  # END and REPORT written

    def __post_init__(self) -> None:
        loop = asyncio.get_running_loop()
        self.result = loop.create_future()
        self.finished = loop.create_future()

    def start(self, timeout_s: float) -> None:
        now = time.monotonic()
        self.started_s = now
        self.deadline_s = now + timeout_s
        self.deadline_ms = int((time.time() + timeout_s) * 1000)

    def abandon(self, outcome: Outcome) -> None:
        """Answer an invocation that will never run (the emulator is shutting down)."""
        self.resolve(outcome)
        if not self.finished.done():
            self.finished.set_result(None)

    def resolve(self, outcome: Outcome) -> bool:
        if self.result.done():
            return False
        self.result.set_result(outcome)
        return True

"""What an environment's Runtime API endpoint talks to (``runtime_api.RuntimeBackend``): the runtime's ``next`` is
the environment's main line; its answers go to the invocation slot, ``init/error`` to the endings, and the
Extensions API calls to the extension side.

The endpoint holds this object, and this object the environment's ``next``: nothing of the environment holds it
back, so closing the endpoint lets both go.
"""

from __future__ import annotations

from collections.abc import Callable, Coroutine
from typing import Any

from runtime_api import MAX_RESPONSE_BYTES, NextEvent

from ..errors import InvalidStateTransition
from .endings import Endings
from .extension_side import ExtensionSide
from .freeze import FreezeControl
from .invocation import Outcome, ResponseStream
from .lifecycle import Lifecycle, State
from .reports import Reports
from .slot import InvocationSlot


class RuntimeSide:
    def __init__(
        self,
        next_invocation: Callable[[], Coroutine[Any, Any, NextEvent]],
        *,
        lifecycle: Lifecycle,
        slot: InvocationSlot,
        reports: Reports,
        endings: Endings,
        extension_side: ExtensionSide,
        freeze: FreezeControl,
    ):
        self.next_invocation = next_invocation  # the environment's own: no extra step on the hot path
        self._lifecycle = lifecycle
        self._slot = slot
        self._reports = reports
        self._endings = endings
        self._extension_side = extension_side
        self._freeze = freeze

    # --------------------------------------------------------------------------------------- Runtime API
    def post_response(self, request_id: str, body: bytes, content_type: str | None) -> None:
        if not self._late(request_id, "response"):
            self._slot.respond(request_id, body, content_type)

    def post_response_too_large(self, request_id: str, size_bytes: int | None) -> None:
        self._slot.respond_too_large(request_id, size_bytes)

    def post_response_stream(self, request_id: str, content_type: str | None) -> ResponseStream:
        content_type = content_type or "application/octet-stream"
        if self._late(request_id, "response"):
            late = ResponseStream(MAX_RESPONSE_BYTES, content_type, forward=False)
            late.end(None)  # already ended: what the runtime sends is dropped
            return late
        return self._slot.respond_stream(request_id, content_type)

    def post_error(self, request_id: str, body: bytes, error_type: str | None) -> None:
        if not self._late(request_id, "error"):
            self._slot.respond_error(request_id, body, error_type)

    def post_init_error(self, body: bytes, error_type: str | None) -> None:
        if self._lifecycle.state is not State.INITIALIZING:
            raise InvalidStateTransition(
                f"init/error is only allowed during INIT, not while {self._lifecycle.state.value}"
            )
        self._endings.fail_init(Outcome.from_runtime_error(body, error_type), "error")

    def _late(self, request_id: str, what: str) -> bool:
        """The answer of an invocation that timed out in a suspended environment: taken, and dropped."""
        if not self._slot.take_late(request_id):
            return False
        self._reports.emit(f"late {what} for timed-out request {request_id} dropped")
        return True

    def process_ids(self) -> list[int]:
        """Every process of the environment; the Runtime API refuses connections other environments' make."""
        return self._freeze.process_ids()

    # ------------------------------------------------------------------------------------- Extensions API
    def register_extension(self, name: str | None, events: object) -> tuple[str, dict[str, str]]:
        return self._extension_side.register(name, events)

    async def next_extension_event(self, identifier: str | None) -> dict[str, Any]:
        return await self._extension_side.next_event(identifier)

    def extension_error(self, identifier: str | None, kind: str, body: bytes, error_type: str | None) -> None:
        self._extension_side.error(identifier, kind, body, error_type)

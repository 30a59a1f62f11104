"""The runtime's answers to an invocation, as one environment takes them: ``/response`` (whole, too large, or
streamed), ``/error`` and ``/init/error``, each checked against the state and the request id first, as RAPID does.

Here too is the give-back: an invocation assigned to an environment whose runtime has answered but is not back in
``next`` yet waits ``ANSWERED_WAIT_S`` for it, then goes to another environment.
"""

from __future__ import annotations

import asyncio
import time
from typing import TYPE_CHECKING, cast

from runtime_api import MAX_RESPONSE_BYTES, MAX_STREAMED_RESPONSE_BYTES

from ..config.settings import FunctionConfig
from ..errors import InvalidRequestID, InvalidStateTransition
from .context import EngineContext
from .invocation import Invocation, Outcome, ResponseStream
from .lifecycle import Lifecycle, State
from .owner import Owner

if TYPE_CHECKING:
    from .environment import Environment

# How long an invocation waits for an environment whose runtime has answered but is not back in `next` yet
# (locally a caller can be faster than the runtime's way back); after that it goes to another environment, as
# Lambda routes around an environment that is still busy.
ANSWERED_WAIT_S = 1.0


class Answers:
    """The ``Environment``'s handling of the runtime's answers, and of the invocation that waits for it meanwhile."""

    config: FunctionConfig
    id: str
    lifecycle: Lifecycle
    current: Invocation | None
    pending: Invocation | None
    _owner: Owner
    _ctx: EngineContext
    _loop: asyncio.AbstractEventLoop
    _timed_out_request_id: str | None
    _give_back_timer: asyncio.TimerHandle | None

    if TYPE_CHECKING:

        def can_take(self) -> bool: ...

        def _emit(self, line: str, invocation: Invocation | None = None) -> None: ...

        def _fail_init(self, outcome: Outcome, status: str) -> None: ...

    def post_response(self, request_id: str, body: bytes, content_type: str | None) -> None:
        if self._late(request_id, "response"):
            return
        invocation = self._answerable(request_id)
        self.lifecycle.on_response()
        invocation.resolve(Outcome(body, None, content_type or "application/json"))

    def post_response_too_large(self, request_id: str, size_bytes: int | None) -> None:
        invocation = self._answerable(request_id)
        self.lifecycle.on_error()
        size = f" ({size_bytes} bytes)" if size_bytes is not None else ""
        invocation.resolve(
            Outcome.error(
                "Function.ResponseSizeTooLarge",
                f"Response payload size{size} exceeded maximum allowed payload size ({MAX_RESPONSE_BYTES} bytes).",
            )
        )

    def post_response_stream(self, request_id: str, content_type: str | None) -> ResponseStream:
        """A streamed response begins. The invocation stays INVOKING until the stream ends. A streaming caller is
        answered at once with the stream; a buffered one (Invoke) gets the whole body, within the 6 MB limit."""
        content_type = content_type or "application/octet-stream"
        if self._late(request_id, "response"):
            late = ResponseStream(MAX_RESPONSE_BYTES, content_type, forward=False)
            late.end(None)  # already ended: what the runtime sends is dropped
            return late
        invocation = self._answerable(request_id)
        streaming = invocation.streaming_invoke
        stream = ResponseStream(
            MAX_STREAMED_RESPONSE_BYTES if streaming else MAX_RESPONSE_BYTES,
            content_type,
            forward=streaming,
            on_end=lambda error: self._stream_ended(invocation, error),
        )
        invocation.stream = stream
        if streaming:
            invocation.resolve(Outcome(b"", None, content_type, stream=stream))
        return stream

    def _stream_ended(self, invocation: Invocation, error: Outcome | None) -> None:
        if invocation is not self.current or self.lifecycle.state is not State.INVOKING:
            return  # the environment ended the invocation first (timeout, crash, shutdown)
        if error is None:
            self.lifecycle.on_response()
        else:
            self.lifecycle.on_error()
        stream = invocation.stream
        if not invocation.streaming_invoke and stream is not None:  # a buffered caller is answered now, whole
            invocation.resolve(error or Outcome(stream.body(), None, stream.content_type))

    def post_error(self, request_id: str, body: bytes, error_type: str | None) -> None:
        if self._late(request_id, "error"):
            return
        invocation = self._answerable(request_id)
        self.lifecycle.on_error()
        invocation.resolve(Outcome.from_runtime_error(body, error_type))

    def post_init_error(self, body: bytes, error_type: str | None) -> None:
        if self.lifecycle.state is not State.INITIALIZING:
            raise InvalidStateTransition(
                f"init/error is only allowed during INIT, not while {self.lifecycle.state.value}"
            )
        self._fail_init(Outcome.from_runtime_error(body, error_type), "error")

    def _late(self, request_id: str, what: str) -> bool:
        """The answer of an invocation that timed out in a suspended environment: taken, and dropped."""
        if request_id != self._timed_out_request_id:
            return False
        self._timed_out_request_id = None
        self._emit(f"late {what} for timed-out request {request_id} dropped")
        return True

    def _answerable(self, request_id: str) -> Invocation:
        """The invocation a response or error answers. As RAPID checks: the state first (403 when no invocation
        waits for an answer: INIT, idle, or already answered), then the request id (400)."""
        state = self.lifecycle.state
        if not self.lifecycle.live:  # timed out or shut down: RAPID's answer for a request already replied to
            raise InvalidRequestID(f"Invalid request ID: request {request_id} has ended")
        if state is not State.INVOKING:
            answered = f" (request {self.current.request_id} was already answered)" if self.current else ""
            raise InvalidStateTransition(
                f"State transition from {state.name} to {State.RESPONDED.name} failed for runtime. Error: no "
                f"invocation is waiting for an answer while the environment is {state.value}{answered}"
            )
        invocation = self.current
        if invocation is None or invocation.request_id != request_id:
            raise InvalidRequestID("Invalid request ID")
        if invocation.stream is not None:
            raise InvalidStateTransition(f"request {request_id} is being answered by a streamed response")
        return invocation

    def answered_recently(self) -> bool:
        """Answered, its runtime expected back in `next` any moment: an invocation may wait for it."""
        return (
            self.lifecycle.state is State.RESPONDED
            and self.can_take()
            and time.monotonic() - self.lifecycle.entered_s < ANSWERED_WAIT_S
        )

    def _arm_give_back(self, invocation: Invocation) -> None:
        delay_s = self.lifecycle.entered_s + ANSWERED_WAIT_S - time.monotonic()
        self._give_back_timer = self._loop.call_later(max(0.0, delay_s), self._give_back, invocation)

    def _give_back(self, invocation: Invocation) -> None:
        """The runtime answered but is still not back in `next`: the waiting invocation goes elsewhere."""
        self._give_back_timer = None
        if self.pending is not invocation or self.lifecycle.state is not State.RESPONDED:
            return
        if time.monotonic() - self.lifecycle.entered_s < ANSWERED_WAIT_S:  # the loop ran the timer a bit early
            self._arm_give_back(invocation)
            return
        self.pending = None
        if not self._owner.place_elsewhere(cast("Environment", self), invocation):
            self.pending = invocation  # at the concurrency limit: it waits here for `next` or the timeout
            return
        self._ctx.timeline.record("reroute", self.id, function=self.config.name, request_id=invocation.request_id)

    def _cancel_give_back(self) -> None:
        if self._give_back_timer is not None:
            self._give_back_timer.cancel()
            self._give_back_timer = None

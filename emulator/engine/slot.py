"""An environment's invocation slot: the invocation assigned and not yet handed over (``pending``), the one the
runtime is running (``current``), an INIT retried inside an invocation (``retry_of``), the runtime's waiting
``next`` call, and the runtime's answers, each checked against the state and the request id first, as RAPID does.

Here too is the give-back: an invocation assigned to an environment whose runtime has answered but is not back in
``next`` yet waits ``ANSWERED_WAIT_S`` for it, then goes to another environment.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

from runtime_api import MAX_RESPONSE_BYTES, MAX_STREAMED_RESPONSE_BYTES, NextEvent

from ..errors import InvalidRequestID, InvalidStateTransition
from .invocation import Invocation, Outcome, ResponseStream
from .lifecycle import Lifecycle, State

# How long an invocation waits for an environment whose runtime has answered but is not back in `next` yet
# (locally a caller can be faster than the runtime's way back); after that it goes to another environment, as
# Lambda routes around an environment that is still busy.
ANSWERED_WAIT_S = 1.0


class InvocationSlot:
    def __init__(self, lifecycle: Lifecycle, loop: asyncio.AbstractEventLoop, *, retry_of: Invocation | None):
        self._lifecycle = lifecycle
        self._loop = loop
        self.current: Invocation | None = None  # handed over, not yet finished
        self.pending: Invocation | None = retry_of  # assigned, not yet handed over
        # An invocation whose INIT failed once: INIT is retried inside it, under its own deadline.
        self.retry_of = retry_of
        self.waiter: asyncio.Future[NextEvent] | None = None  # the runtime's `next` call, while it waits
        self.runtime_waiting = False  # the runtime is in `next` (the environment may freeze once extensions are)
        self.suspended = False  # timed out with reset_on_timeout off: frozen mid-handler, reused as it is
        self._timed_out_request_id: str | None = None
        self._give_back_timer: asyncio.TimerHandle | None = None

    @property
    def running(self) -> Invocation | None:
        """The invocation an ending answers: the one handed over, or the one whose INIT is being retried."""
        return self.current or self.retry_of

    def log_target(self) -> Invocation | None:
        """The invocation a log line belongs to."""
        return self.current or self.retry_of or self.pending

    @property
    def waiting(self) -> bool:
        """The runtime's `next` call waits for an event."""
        return self.waiter is not None and not self.waiter.done()

    # ------------------------------------------------------------------------------------------ suspension
    def suspend(self, request_id: str) -> None:
        """The invocation timed out and the environment is kept as it is: its late answer will be dropped."""
        self._timed_out_request_id = request_id
        self.suspended = True

    def resume(self) -> None:
        """A suspended environment takes an invocation: its runtime finishes the timed-out handler first."""
        self.suspended = False

    def take_late(self, request_id: str) -> bool:
        """The answer of an invocation that timed out in a suspended environment: taken (True), to be dropped."""
        if request_id != self._timed_out_request_id:
            return False
        self._timed_out_request_id = None
        return True

    # ----------------------------------------------------------------------------------------------- answers
    def respond(self, request_id: str, body: bytes, content_type: str | None) -> None:
        invocation = self._answerable(request_id)
        self._lifecycle.on_response()
        invocation.resolve(Outcome(body, None, content_type or "application/json"))

    def respond_too_large(self, request_id: str, size_bytes: int | None) -> None:
        invocation = self._answerable(request_id)
        self._lifecycle.on_error()
        size = f" ({size_bytes} bytes)" if size_bytes is not None else ""
        invocation.resolve(
            Outcome.error(
                "Function.ResponseSizeTooLarge",
                f"Response payload size{size} exceeded maximum allowed payload size ({MAX_RESPONSE_BYTES} bytes).",
            )
        )

    def respond_stream(self, request_id: str, content_type: str) -> ResponseStream:
        """A streamed response begins. The invocation stays INVOKING until the stream ends. A streaming caller is
        answered at once with the stream; a buffered one (Invoke) gets the whole body, within the 6 MB limit."""
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
        if invocation is not self.current or self._lifecycle.state is not State.INVOKING:
            return  # the environment ended the invocation first (timeout, crash, shutdown)
        if error is None:
            self._lifecycle.on_response()
        else:
            self._lifecycle.on_error()
        stream = invocation.stream
        if not invocation.streaming_invoke and stream is not None:  # a buffered caller is answered now, whole
            invocation.resolve(error or Outcome(stream.body(), None, stream.content_type))

    def respond_error(self, request_id: str, body: bytes, error_type: str | None) -> None:
        invocation = self._answerable(request_id)
        self._lifecycle.on_error()
        invocation.resolve(Outcome.from_runtime_error(body, error_type))

    def _answerable(self, request_id: str) -> Invocation:
        """The invocation a response or error answers. As RAPID checks: the state first (403 when no invocation
        waits for an answer: INIT, idle, or already answered), then the request id (400)."""
        state = self._lifecycle.state
        if not self._lifecycle.live:  # timed out or shut down: RAPID's answer for a request already replied to
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

    # --------------------------------------------------------------------------------------------- give-back
    def answered_within_wait(self) -> bool:
        """Answered less than ``ANSWERED_WAIT_S`` ago, the runtime expected back in `next` any moment."""
        lifecycle = self._lifecycle
        return lifecycle.state is State.RESPONDED and time.monotonic() - lifecycle.entered_s < ANSWERED_WAIT_S

    def arm_give_back(self, invocation: Invocation, give_back: Callable[[Invocation], None]) -> None:
        """``invocation`` waits here for the runtime's way back to `next`; after ``ANSWERED_WAIT_S`` from the answer
        it is given back (``give_back``) unless it was handed over meanwhile."""
        delay_s = self._lifecycle.entered_s + ANSWERED_WAIT_S - time.monotonic()
        self._give_back_timer = self._loop.call_later(max(0.0, delay_s), self._give_back_due, invocation, give_back)

    def _give_back_due(self, invocation: Invocation, give_back: Callable[[Invocation], None]) -> None:
        self._give_back_timer = None
        if self.pending is not invocation or self._lifecycle.state is not State.RESPONDED:
            return
        if time.monotonic() - self._lifecycle.entered_s < ANSWERED_WAIT_S:  # the loop ran the timer a bit early
            self.arm_give_back(invocation, give_back)
            return
        give_back(invocation)

    def cancel_give_back(self) -> None:
        if self._give_back_timer is not None:
            self._give_back_timer.cancel()
            self._give_back_timer = None

"""Asynchronous invocation (``InvocationType=Event``): a queue per function, delivery under the concurrency
limits, retries with backoff on function errors, a maximum event age, and an on-failure record.

Nothing is lost: an event is delivered, or recorded as failed (``RetriesExhausted`` / ``EventAgeExceeded``), or,
when the emulator stops first, reported and kept in the state directory to be queued again on the next start.
Duplicates are possible (an event whose environment dies mid-run is retried), losses are not.
"""

from __future__ import annotations

import asyncio
import base64
import json
import logging
import time
import uuid
from collections import deque
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from ..engine.invocation import Invocation, Outcome
from ..engine.pool import FunctionPool
from ..engine.timeline import Timeline, record_outcome

log = logging.getLogger("lambda_freeze.async")

FAILURES_FILE = "async-failures.jsonl"
PENDING_FILE = "async-pending.jsonl"


@dataclass(eq=False)
class AsyncEvent:
    function: str
    payload: bytes
    request_id: str = field(default_factory=lambda: str(uuid.uuid4()))
    received_at: float = field(default_factory=time.time)  # wall clock: the event's age survives a restart
    attempts: int = 0
    last: Outcome | None = None

    def age_s(self) -> float:
        return time.time() - self.received_at

    def to_json(self) -> dict[str, Any]:
        return {
            "function": self.function,
            "requestId": self.request_id,
            "receivedAt": self.received_at,
            "attempts": self.attempts,
            "payload": base64.b64encode(self.payload).decode(),
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> AsyncEvent:
        return cls(
            function=data["function"],
            payload=base64.b64decode(data["payload"]),
            request_id=data["requestId"],
            received_at=float(data["receivedAt"]),
            attempts=int(data["attempts"]),
        )


class FailureRecord:
    """Events that exhausted their retries or aged out, in the shape of Lambda's on-failure destination record."""

    def __init__(self, state_dir: Path | None):
        self.records: list[dict[str, Any]] = []
        self._file = state_dir / FAILURES_FILE if state_dir else None

    def add(self, event: AsyncEvent, condition: str, function_arn: str) -> dict[str, Any]:
        outcome = event.last
        try:
            request_payload: Any = json.loads(event.payload)
        except ValueError:
            request_payload = event.payload.decode("utf-8", "replace")
        record: dict[str, Any] = {
            "version": "1.0",
            "timestamp": datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z"),
            "requestContext": {
                "requestId": event.request_id,
                "functionArn": f"{function_arn}:$LATEST",
                "condition": condition,
                "approximateInvokeCount": event.attempts,
            },
            "requestPayload": request_payload,
        }
        if outcome is not None:
            record["responseContext"] = {
                "statusCode": 200,
                "executedVersion": "$LATEST",
                "functionError": "Unhandled",
            }
            try:
                record["responsePayload"] = json.loads(outcome.payload)
            except ValueError:
                record["responsePayload"] = outcome.payload.decode("utf-8", "replace")
        self.records.append(record)
        if self._file is not None:
            with self._file.open("a") as out:
                out.write(json.dumps(record) + "\n")
        return record


class AsyncQueue:
    """One function's asynchronous events. ``submit`` → delivered by ``run`` → ``close`` keeps what is left."""

    def __init__(self, pool: FunctionPool, failures: FailureRecord, timeline: Timeline):
        self.pool = pool
        self.config = pool.config
        self._failures = failures
        self._timeline = timeline
        self._queue: deque[AsyncEvent] = deque()
        self._retrying: dict[AsyncEvent, asyncio.TimerHandle] = {}
        self._in_flight: dict[AsyncEvent, asyncio.Task[None]] = {}
        self._wakeup = asyncio.Event()
        self._runner: asyncio.Task[None] | None = None
        self._closing = False
        self.delivered = 0
        self.failed = 0

    def start(self) -> None:
        self._runner = asyncio.get_running_loop().create_task(self._run(), name=f"async {self.config.name}")

    def submit(self, event: AsyncEvent) -> None:
        self._queue.append(event)
        self._timeline.record("async", self.config.name, request_id=event.request_id, what="queued")
        self._wakeup.set()

    def status(self) -> dict[str, int]:
        return {
            "queued": len(self._queue),
            "retrying": len(self._retrying),
            "in_flight": len(self._in_flight),
            "delivered": self.delivered,
            "failed": self.failed,
        }

    async def _run(self) -> None:
        while True:
            await self._wakeup.wait()
            self._wakeup.clear()
            while self._queue and not self._closing:
                event = self._queue[0]
                if event.age_s() > self.config.max_event_age_s:
                    self._queue.popleft()
                    self._fail(event, "EventAgeExceeded")
                    continue
                invocation = Invocation(event.payload, self.config.arn, request_id=event.request_id)
                self.pool.capacity_freed.clear()
                if not self.pool.try_place(invocation):
                    # Throttled: wait for an environment to come free (Lambda keeps throttled events queued), or for a
                    # new event or a retry come due. Cleared first: a wake-up already seen would end every wait at
                    # once, and the queue would poll for capacity at full CPU until an environment came free.
                    self._wakeup.clear()
                    waiter = asyncio.ensure_future(self.pool.capacity_freed.wait())
                    wake = asyncio.ensure_future(self._wakeup.wait())
                    try:
                        await asyncio.wait({waiter, wake}, return_when=asyncio.FIRST_COMPLETED)
                    finally:
                        waiter.cancel()
                        wake.cancel()
                    continue
                self._queue.popleft()
                event.attempts += 1
                self._in_flight[event] = asyncio.get_running_loop().create_task(self._attempt(event, invocation))

    async def _attempt(self, event: AsyncEvent, invocation: Invocation) -> None:
        try:
            outcome = await invocation.result
        finally:
            self._in_flight.pop(event, None)
        record_outcome(self._timeline, invocation, outcome, self.config.name, attempt=event.attempts)
        if outcome.ok:
            self.delivered += 1
            self._timeline.record(
                "async", self.config.name, request_id=event.request_id, what="delivered", attempt=event.attempts
            )
            return
        event.last = outcome
        if event.attempts > self.config.max_retry_attempts:
            self._fail(event, "RetriesExhausted")
            return
        delay_s = self.config.retry_delays_s[event.attempts - 1]
        self._timeline.record(
            "async",
            self.config.name,
            request_id=event.request_id,
            what="retry",
            attempt=event.attempts,
            delay_s=delay_s,
            error_type=outcome.error_type,
        )
        self._retrying[event] = asyncio.get_running_loop().call_later(delay_s, self._requeue, event)

    def _requeue(self, event: AsyncEvent) -> None:
        self._retrying.pop(event, None)
        if event.age_s() > self.config.max_event_age_s:
            self._fail(event, "EventAgeExceeded")
            return
        self._queue.append(event)
        self._wakeup.set()

    def _fail(self, event: AsyncEvent, condition: str) -> None:
        self.failed += 1
        self._failures.add(event, condition, self.config.arn)
        self._timeline.record(
            "async",
            self.config.name,
            request_id=event.request_id,
            what="failed",
            condition=condition,
            attempts=event.attempts,
        )
        log.warning(
            "%s: asynchronous event %s failed (%s after %d attempt(s))",
            self.config.name,
            event.request_id,
            condition,
            event.attempts,
        )

    async def close(self) -> list[AsyncEvent]:
        """Stop delivering; let the attempts under way finish; return the events never delivered."""
        self._closing = True
        if self._runner is not None:
            self._runner.cancel()
            try:
                await self._runner
            except asyncio.CancelledError:
                pass
        if self._in_flight:
            await asyncio.gather(*self._in_flight.values(), return_exceptions=True)
        left = list(self._queue)
        for event, timer in self._retrying.items():
            timer.cancel()
            left.append(event)
        self._queue.clear()
        self._retrying.clear()
        return left


def save_pending(state_dir: Path | None, events: list[AsyncEvent]) -> None:
    """Report the undelivered events; keep them in the state directory (if any) for the next start."""
    if not events:
        return
    ids = ", ".join(e.request_id for e in events[:10]) + (" ..." if len(events) > 10 else "")
    if state_dir is None:
        log.warning(
            "%d asynchronous event(s) not delivered at shutdown (no --state-dir to keep them): %s", len(events), ids
        )
        for event in events:
            print(json.dumps({"undelivered": event.to_json()}), flush=True)
        return
    with (state_dir / PENDING_FILE).open("a") as out:
        for event in events:
            out.write(json.dumps(event.to_json()) + "\n")
    log.warning(
        "%d asynchronous event(s) not delivered at shutdown, kept in %s: %s", len(events), state_dir / PENDING_FILE, ids
    )


def load_pending(state_dir: Path | None) -> list[AsyncEvent]:
    if state_dir is None:
        return []
    path = state_dir / PENDING_FILE
    if not path.exists():
        return []
    events = [AsyncEvent.from_json(json.loads(line)) for line in path.read_text().splitlines() if line.strip()]
    path.unlink()
    return events

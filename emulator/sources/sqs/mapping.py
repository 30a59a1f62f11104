"""One SQS event source mapping: pollers that long-poll the queue (in threads of their own, so that a 20 s
``ReceiveMessage`` never holds the event loop), gather a batch within the batching window, invoke the function
through its pool, and delete what succeeded.

A batch that cannot be placed (reserved concurrency, ``MaximumConcurrency``) is held and retried while its
messages are invisible; once the queue's visibility timeout has passed, the messages are back in the queue (and
may be received again while the held batch still runs: the duplicates Lambda's at-least-once delivery allows).
Nothing is ever deleted unless the function processed it.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import json
import logging
import threading
import time
from collections.abc import Mapping
from typing import Any

from ...config.events import SqsMappingConfig
from ...engine.invocation import Invocation
from ...engine.pool import FunctionPool
from ...engine.timeline import Timeline, record_outcome
from ..aws.resources import Queue
from ..events import sqs as sqs_events
from .batch import settle

log = logging.getLogger("lambda_freeze.sqs")

LONG_POLL_S = 20  # Lambda's pollers use SQS's longest wait
MAX_BACKOFF_S = 30.0


class _PollerEnds(Exception):
    """A poller thread is done: the mapping stops, the loop is gone, or the pollers scale down."""


class SqsMapping:
    """``start()`` → pollers run → ``await close()``; ``enabled`` can be switched while it runs."""

    def __init__(
        self, config: SqsMappingConfig, pool: FunctionPool, queue: Queue, sqs: Any, timeline: Timeline, *, endpoint: str
    ):
        self.config = config
        self.pool = pool
        self.queue = queue
        self._sqs = sqs
        self._timeline = timeline
        self._endpoint = endpoint
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stopping = threading.Event()
        self._enabled = threading.Event()
        self._pollers = 0  # poller threads running: one, and up to the mapping's concurrency while busy
        self._in_flight: set[concurrent.futures.Future[list[Mapping[str, Any]]]] = set()
        self._lock = threading.Lock()
        self.poller_cpu_s = 0.0  # CPU the poller threads spent (receive, delete, hand-over), for the benchmark
        self.last_result = "No records processed"
        self.last_modified = time.time()
        self.counts = {
            "received": 0,
            "batches": 0,
            "deleted": 0,
            "failed_batches": 0,
            "returned": 0,
            "throttled": 0,
            "receive_errors": 0,
            "redelivered": 0,  # messages handed to the function again (ApproximateReceiveCount above 1)
        }
        if config.enabled:
            self._enabled.set()

    @property
    def uuid(self) -> str:
        return self.config.uuid

    @property
    def enabled(self) -> bool:
        return self._enabled.is_set() and not self._stopping.is_set()

    @property
    def state(self) -> str:
        if self._stopping.is_set():
            return "Deleting"
        return "Enabled" if self._enabled.is_set() else "Disabled"

    def start(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._add_poller(first=True)

    def _add_poller(self, *, first: bool = False) -> None:
        """One more poller, within the mapping's concurrency; called with ``_lock`` held, or at start."""
        self._pollers += 1
        # Daemon threads: a long poll under way must not hold the emulator's exit.
        thread = threading.Thread(
            target=self._poll, args=(first,), name=f"sqs {self.queue.name} {self._pollers}", daemon=True
        )
        thread.start()

    def _scale(self, messages: int, first: bool) -> bool:
        """Like Lambda's pollers, scale up while batches come back full and down when the queue runs dry; False
        when this poller should end."""
        with self._lock:
            if messages >= min(10, self.config.batch_size) and self._pollers < self.config.pollers:
                self._add_poller()
            elif messages == 0 and not first:
                self._pollers -= 1
                return False
        return True

    def set_enabled(self, enabled: bool) -> None:
        (self._enabled.set if enabled else self._enabled.clear)()
        self.last_modified = time.time()

    def _count(self, key: str, n: int = 1) -> None:
        with self._lock:
            self.counts[key] += n

    # ---------------------------------------------------------------------------------- poller threads
    def _poll(self, first: bool) -> None:
        backoff_s = 1.0
        while not self._stopping.is_set():
            cpu_s = time.thread_time()
            try:
                backoff_s = self._poll_once(first, backoff_s)
            except _PollerEnds:
                return
            finally:
                self._count_cpu(time.thread_time() - cpu_s)  # the poller's own CPU: blocking waits cost none

    def _count_cpu(self, seconds: float) -> None:
        with self._lock:
            self.poller_cpu_s += seconds

    def _poll_once(self, first: bool, backoff_s: float) -> float:
        """One receive and its batch; the backoff for the next receive. Raises _PollerEnds when done."""
        if not self._enabled.is_set():
            self._enabled.wait()  # set again by set_enabled(True), or by close()
            return backoff_s
        try:
            received_s = time.monotonic()
            messages = self._receive()
        except Exception as exc:  # a boundary: the endpoint is down, or the queue is gone
            if self._stopping.is_set():
                raise _PollerEnds from None  # the endpoint went first at shutdown
            self._count("receive_errors")
            if backoff_s == 1.0:  # once per outage, not once per attempt
                log.error(
                    "SQS mapping %s: cannot receive from %s at %s: %s (retrying with backoff)",
                    self.uuid,
                    self.queue.name,
                    self._endpoint,
                    exc,
                )
            self.last_result = f"PROBLEM: cannot receive from {self._endpoint}: {exc}"
            self._record_soon(what="receive_error", error=str(exc)[:300])
            self._stopping.wait(backoff_s)
            return min(backoff_s * 2, MAX_BACKOFF_S)
        if not self._scale(len(messages), first):
            raise _PollerEnds
        if not messages:
            return 1.0
        if self._stopping.is_set():
            raise _PollerEnds  # not processed, not deleted: they come back after the visibility timeout
        if not self._enabled.is_set():
            self._release(messages)  # disabled during the long poll: back to the queue at once
            return 1.0
        self._count("received", len(messages))
        again = sum(int(m.get("Attributes", {}).get("ApproximateReceiveCount", "1")) > 1 for m in messages)
        if again:
            self._count("redelivered", again)
        assert self._loop is not None
        try:
            future = asyncio.run_coroutine_threadsafe(self._process(messages, received_s), self._loop)
        except RuntimeError:  # the loop is closed
            raise _PollerEnds from None
        with self._lock:
            self._in_flight.add(future)
        try:
            processed = future.result()
        except (concurrent.futures.CancelledError, RuntimeError):
            raise _PollerEnds from None
        finally:
            with self._lock:
                self._in_flight.discard(future)
        if processed:
            deleted = self._delete(processed)
            try:  # on the loop: the timeline is the loop's, and its listeners wake whoever awaits the count
                self._loop.call_soon_threadsafe(self._record_deleted, deleted)
            except RuntimeError:
                raise _PollerEnds from None
        return 1.0

    def _receive(self) -> list[Mapping[str, Any]]:
        config = self.config
        window_s = config.max_batching_window_s
        deadline = time.monotonic() + window_s
        messages: list[Mapping[str, Any]] = []
        while True:
            wait_s = (
                LONG_POLL_S
                if window_s == 0 or not messages
                else max(0, min(LONG_POLL_S, round(deadline - time.monotonic())))
            )
            response = self._sqs.receive_message(
                QueueUrl=self.queue.url,
                MaxNumberOfMessages=min(10, config.batch_size - len(messages)),
                WaitTimeSeconds=wait_s,
                AttributeNames=["All"],
                MessageAttributeNames=["All"],
            )
            messages.extend(response.get("Messages", []))
            if window_s == 0 or len(messages) >= config.batch_size or time.monotonic() >= deadline:
                return messages
            if self._stopping.is_set():
                return messages

    def _release(self, messages: list[Mapping[str, Any]]) -> None:
        entries = [
            {"Id": str(i), "ReceiptHandle": m["ReceiptHandle"], "VisibilityTimeout": 0} for i, m in enumerate(messages)
        ]
        try:
            self._sqs.change_message_visibility_batch(QueueUrl=self.queue.url, Entries=entries)
        except Exception as exc:  # a boundary: they come back after the visibility timeout instead
            log.warning("SQS mapping %s: could not release %d message(s): %s", self.uuid, len(messages), exc)

    def _record_soon(self, **detail: Any) -> None:
        """A timeline record from a poller thread: made on the loop, whose listeners wake the waiters."""
        if self._loop is None:
            return
        try:
            self._loop.call_soon_threadsafe(
                lambda: self._timeline.record("sqs", self.pool.config.name, mapping=self.uuid, **detail)
            )
        except RuntimeError:  # the loop is closed
            pass

    def _record_deleted(self, deleted: int) -> None:
        self._timeline.record("sqs", self.pool.config.name, mapping=self.uuid, what="deleted", messages=deleted)

    def _delete(self, messages: list[Mapping[str, Any]]) -> int:
        deleted = 0
        for start in range(0, len(messages), 10):
            chunk = messages[start : start + 10]
            entries = [{"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]} for i, m in enumerate(chunk)]
            try:
                response = self._sqs.delete_message_batch(QueueUrl=self.queue.url, Entries=entries)
            except Exception as exc:  # a boundary: they come back and are processed again, never lost
                log.error("SQS mapping %s: deleting %d message(s) failed: %s", self.uuid, len(chunk), exc)
                continue
            deleted += len(response.get("Successful", []))
        self._count("deleted", deleted)
        return deleted

    # ---------------------------------------------------------------------------------- on the event loop
    async def _process(self, messages: list[Mapping[str, Any]], received_s: float) -> list[Mapping[str, Any]]:
        """Invoke the function with one batch; the messages to delete."""
        payload = json.dumps(sqs_events.event(messages, queue_arn=self.queue.arn, region=self.pool.config.region))
        visible_again_s = received_s + self.queue.visibility_timeout_s
        name = self.pool.config.name
        while True:
            invocation = Invocation(payload.encode(), self.pool.config.arn)
            self.pool.capacity_freed.clear()
            if self.pool.try_place(invocation):
                break
            self._count("throttled")
            remaining_s = visible_again_s - time.monotonic()
            try:
                if remaining_s <= 0:
                    raise TimeoutError
                async with asyncio.timeout(remaining_s):
                    await self.pool.capacity_freed.wait()
            except TimeoutError:
                # Throttled past the visibility timeout: the messages are back in the queue, nothing is lost.
                self._count("returned", len(messages))
                self._timeline.record("sqs", name, mapping=self.uuid, what="returned", messages=len(messages))
                return []
        self._count("batches")
        outcome = await invocation.result
        record_outcome(self._timeline, invocation, outcome, name, mapping=self.uuid)
        result = settle(messages, outcome, report_item_failures=self.config.report_batch_item_failures)
        if result.failed:
            self._count("failed_batches")
        self.last_result = result.reason
        self._timeline.record(
            "sqs",
            name,
            mapping=self.uuid,
            what="batch",
            request_id=invocation.request_id,
            messages=len(messages),
            deleted=len(result.delete),
            failed=len(result.failed),
        )
        return list(result.delete)

    async def close(self) -> None:
        """Stop polling; let batches under way finish (and be deleted by their pollers)."""
        self._stopping.set()
        self._enabled.set()  # wakes a disabled poller so that it sees the stop
        with self._lock:
            pending = [asyncio.wrap_future(f) for f in self._in_flight]
        if pending:
            await asyncio.gather(*pending, return_exceptions=True)

    def describe(self) -> dict[str, Any]:
        """In the shape of Lambda's ``GetEventSourceMapping``, with the poller's counts beside it."""
        config = self.config
        document: dict[str, Any] = {
            "UUID": config.uuid,
            "EventSourceArn": self.queue.arn,
            "FunctionArn": self.pool.config.arn,
            "BatchSize": config.batch_size,
            "MaximumBatchingWindowInSeconds": config.max_batching_window_s,
            "FunctionResponseTypes": ["ReportBatchItemFailures"] if config.report_batch_item_failures else [],
            "State": self.state,
            "StateTransitionReason": "USER_INITIATED",
            "LastModified": self.last_modified,
            "LastProcessingResult": self.last_result,
        }
        if config.max_concurrency is not None:
            document["ScalingConfig"] = {"MaximumConcurrency": config.max_concurrency}
        with self._lock:
            document["Counts"] = dict(self.counts)
        return document

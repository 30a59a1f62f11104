"""Running a scenario's SQS and S3 parts: the queues and buckets on the embedded endpoint, the functions' mappings
and schedules, the ``send_message``, ``await_queue``, ``put_object`` and ``trigger`` steps and the counts
``expect = { queue = ... }`` checks."""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Any

from ..config.events import EventsConfig
from .model import Scenario, Step


class QueueRun:
    """The queues of one run. They live on the SQS endpoint of the emulator that serves the first mapped function
    (every emulator of a run declares them; a run has one unless its functions ask for different freezers)."""

    def __init__(self, scenario: Scenario):
        self.scenario = scenario
        self.thread: Any = None  # the EmulatorThread whose endpoint holds the queues the steps use
        self.triggers: dict[str, Any] = {}  # schedule -> the EmulatorThread that serves its function

    def events(self) -> EventsConfig:
        return EventsConfig(queues=tuple(self.scenario.queues.values()), buckets=tuple(self.scenario.buckets.values()))

    def add_mappings(self, function: str, thread: Any) -> None:
        """Once the function is served: its event source mappings start polling."""
        spec = self.scenario.functions[function]
        if self.thread is None and (spec.sqs or self.scenario.queues or self.scenario.buckets):
            self.thread = thread
        for config in spec.sqs:

            async def create(emulator: Any, config: Any = config) -> None:
                await emulator.events.mappings.create(config)

            thread.call(create)
        for schedule in spec.schedules:

            async def add(emulator: Any, schedule: Any = schedule) -> None:
                emulator.events.schedules.add(schedule)

            thread.call(add)
            self.triggers[schedule.name] = thread

    def _sqs(self) -> Any:
        return self.thread.emulator.events.endpoint.client("sqs")

    def _url(self, queue: str) -> str:
        return str(self._sqs().get_queue_url(QueueName=queue)["QueueUrl"])

    def send(self, step: Step) -> str:
        assert step.queue is not None
        sqs, url = self._sqs(), self._url(step.queue)
        messages = list(step.messages)
        for start in range(0, len(messages), 10):  # SendMessageBatch takes ten at most
            batch = [{"Id": str(i), **m} for i, m in enumerate(messages[start:start + 10])]
            answer = sqs.send_message_batch(QueueUrl=url, Entries=batch)
            if answer.get("Failed"):
                raise RuntimeError(f"SendMessageBatch to {step.queue} failed: {answer['Failed'][0]}")
        return f"sent {len(messages)}"

    def put(self, step: Step) -> str:
        """PutObject for each object: the bucket's notifications reach its queues as S3 sends them."""
        assert step.bucket is not None
        s3 = self.thread.emulator.events.endpoint.client("s3")
        for key, body in step.objects:
            s3.put_object(Bucket=step.bucket, Key=key, Body=body.encode())
        return f"put {len(step.objects)}"

    def trigger(self, name: str) -> str:
        """Fires the schedule now; the request id of its asynchronous invocation."""

        async def fire(emulator: Any) -> str:
            return str(emulator.events.trigger(name))

        return str(self.triggers[name].call(fire))

    def counts(self, queue: str) -> dict[str, int]:
        """processed (deleted after the function succeeded), duplicated (handed to the function again), in_queue
        (visible or in flight) and in_dlq (in its dead-letter queue, when it has one)."""
        mappings = [m for m in self.thread.emulator.events.mappings.mappings.values() if m.queue.name == queue]
        counts = {
            "processed": sum(m.counts["deleted"] for m in mappings),
            "duplicated": sum(m.counts["redelivered"] for m in mappings),
            "in_queue": self._depth(queue),
        }
        dead_letter_queue = self.scenario.queues[queue].dead_letter_queue
        if dead_letter_queue is not None:
            counts["in_dlq"] = self._depth(dead_letter_queue)
        return counts

    def _depth(self, queue: str) -> int:
        attributes = self._sqs().get_queue_attributes(
            QueueUrl=self._url(queue),
            AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"],
        )["Attributes"]
        return int(attributes["ApproximateNumberOfMessages"]) + int(attributes["ApproximateNumberOfMessagesNotVisible"])

    def wait(self, step: Step) -> str:
        """Until the counts hold: ``in_queue`` exactly, ``processed`` and ``in_dlq`` at least."""
        assert step.queue is not None and step.counts is not None
        deadline = time.monotonic() + step.seconds
        while not _reached(counts := self.counts(step.queue), step.counts):
            if time.monotonic() >= deadline:
                raise TimeoutError(f"queue {step.queue} not there after {step.seconds:g} s: {_text(counts)}")
            # wait-ok: a message's redrive and its visibility timeout happen inside the SQS server, which sends no
            # event; its counts are read again every 0.1 s until the deadline.
            time.sleep(0.1)
        return _text(counts)

    def check(self, queue: str, expected: Mapping[str, Any]) -> str | None:
        """Why the counts are not what the expect step says (N exactly, or ``{ at_least = N }``), or None."""
        counts = self.counts(queue)
        wrong = []
        for key, n in expected.items():
            got = counts.get(key, 0)
            if isinstance(n, Mapping) and got < n["at_least"]:
                wrong.append(f"{key} {got}, not at least {n['at_least']}")
            elif not isinstance(n, Mapping) and got != n:
                wrong.append(f"{key} {got}, not {n}")
        return f"{'; '.join(wrong)} ({_text(counts)})" if wrong else None


def _reached(counts: Mapping[str, int], wanted: Mapping[str, int]) -> bool:
    return all(counts.get(key, 0) == n if key == "in_queue" else counts.get(key, 0) >= n for key, n in wanted.items())


def _text(counts: Mapping[str, int]) -> str:
    return ", ".join(f"{key} {n}" for key, n in counts.items())

"""Queues, buckets and SQS mappings for synchronous callers (what the ``lambda_freeze_aws`` fixture hands out): an
embedded SQS/S3 endpoint (or one given), boto3 clients on it, and functions whose SDK and event source mappings
use it.

    with AwsResources() as aws:
        aws.create_queue("orders", visibility_timeout_s=30)
        fn = aws.function("samples/python/sqs_partial_batch/fixed", sqs=[{"queue": "orders"}])
        aws.client("sqs").send_message(QueueUrl=aws.queue_url("orders"), MessageBody="{}")
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from .config.events import BucketConfig, QueueConfig, QueueNotification
from .harness import LambdaFreeze, LambdaFunction
from .sources.aws.endpoint import AwsEndpoint
from .sources.aws.resources import Queue, create_buckets, create_queues, find_queue


class AwsResources:
    """``start()`` (or ``with``) → create queues and buckets, serve functions → ``close()``."""

    def __init__(self, endpoint_url: str | None = None, *, freezer: str = "auto"):
        self._endpoint = AwsEndpoint(endpoint_url)
        self._freezer = freezer
        self._functions: LambdaFreeze | None = None

    def start(self) -> AwsResources:
        asyncio.run(self._endpoint.start())  # spawned from this thread, which outlives the test
        self._functions = LambdaFreeze(freezer=self._freezer, aws_endpoint=self._endpoint.url)
        return self

    @property
    def url(self) -> str:
        return self._endpoint.url

    def client(self, service: str) -> Any:
        """A boto3 client on the endpoint the functions reach (``sqs``, ``s3``)."""
        return self._endpoint.client(service)

    def env(self) -> dict[str, str]:
        return self._endpoint.function_env()

    def create_queue(self, name: str, **settings: Any) -> Queue:
        """``settings`` are ``QueueConfig``'s: ``visibility_timeout_s``, ``dead_letter_queue``, ``max_receive_count``,
        ``fifo``, ``content_based_deduplication``."""
        dead_letter_queue = settings.get("dead_letter_queue")
        if dead_letter_queue is not None and not dead_letter_queue.startswith("arn:"):
            settings["dead_letter_queue"] = self.queue(dead_letter_queue).arn  # created earlier, on its own
        return create_queues(self.client("sqs"), (QueueConfig(name, **settings),), self.url)[name]

    def create_bucket(self, name: str, *, notify_queue: str | None = None) -> None:
        notifications = (QueueNotification(notify_queue),) if notify_queue else ()
        create_buckets(self.client("s3"), self.client("sqs"), (BucketConfig(name, notifications),), self.url)

    def queue(self, name: str) -> Queue:
        return find_queue(self.client("sqs"), name, self.url)

    def queue_url(self, name: str) -> str:
        return self.queue(name).url

    def count(self, name: str) -> int:
        """Messages in a queue, visible or in flight (e.g. what a dead-letter queue holds)."""
        attributes = self.client("sqs").get_queue_attributes(
            QueueUrl=self.queue_url(name),
            AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"],
        )["Attributes"]
        return int(attributes["ApproximateNumberOfMessages"]) + int(attributes["ApproximateNumberOfMessagesNotVisible"])

    def function(
        self, code_dir: str | Path, handler: str = "app.handler", *, sqs: list[dict[str, Any]] | None = None, **kw: Any
    ) -> LambdaFunction:
        """A function (as ``lambda_freeze.function``) whose SDK reaches the endpoint; each ``sqs`` entry is an
        event source mapping: ``{"queue": NAME, "BatchSize": 10, "FunctionResponseTypes": [...], ...}`` with
        CreateEventSourceMapping's field names. The function's ``aws`` is this object."""
        if self._functions is None:
            raise RuntimeError("AwsResources.start() must be called first")
        fn = self._functions.function(code_dir, handler, **kw)
        fn.aws = self
        for mapping in sqs or []:
            settings = dict(mapping)
            arn = self.queue(settings.pop("queue")).arn
            fn.client.create_event_source_mapping(EventSourceArn=arn, FunctionName=fn.name, **settings)
        return fn

    def close(self) -> None:
        if self._functions is not None:
            self._functions.close()
            self._functions = None
        asyncio.run(self._endpoint.close())

    def __enter__(self) -> AwsResources:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()

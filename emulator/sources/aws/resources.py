"""Queues and buckets declared in the configuration, created on the AWS endpoint at start (dead-letter queues
first, buckets with their notifications last), and the lookup of a queue by name or ARN."""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from typing import Any

from ...config.events import BucketConfig, QueueConfig
from ...errors import ConfigError
from ..events.sqs import queue_name_of

log = logging.getLogger("lambda_freeze.aws")


@dataclass(frozen=True)
class Queue:
    name: str
    url: str
    arn: str
    visibility_timeout_s: int
    fifo: bool


def _arn_of(name_or_arn: str, queues: dict[str, Queue]) -> str:
    if name_or_arn.startswith("arn:"):
        return name_or_arn
    if name_or_arn in queues:
        return queues[name_or_arn].arn
    raise ConfigError(f"dead-letter queue {name_or_arn!r} is not declared before the queue that names it")


def create_queues(sqs: Any, configs: tuple[QueueConfig, ...], endpoint: str) -> dict[str, Queue]:
    """Create every queue (idempotent, as CreateQueue is with equal attributes); dead-letter targets first."""
    made: dict[str, Queue] = {}
    pending = list(configs)
    while pending:
        ready = [
            q
            for q in pending
            if q.dead_letter_queue is None or q.dead_letter_queue.startswith("arn:") or q.dead_letter_queue in made
        ]
        if not ready:
            names = ", ".join(f"{q.name} → {q.dead_letter_queue}" for q in pending)
            raise ConfigError(f"dead-letter queue(s) not declared, or naming each other in a circle: {names}")
        for config in ready:
            pending.remove(config)
            attributes = {"VisibilityTimeout": str(config.visibility_timeout_s)}
            if config.fifo:
                attributes["FifoQueue"] = "true"
                if config.content_based_deduplication:
                    attributes["ContentBasedDeduplication"] = "true"
            if config.dead_letter_queue is not None:
                attributes["RedrivePolicy"] = json.dumps(
                    {
                        "deadLetterTargetArn": _arn_of(config.dead_letter_queue, made),
                        "maxReceiveCount": config.max_receive_count,
                    }
                )
            try:
                url = sqs.create_queue(QueueName=config.name, Attributes=attributes)["QueueUrl"]
            except Exception as exc:  # a boundary: botocore's errors name the endpoint and the cause
                raise ConfigError(f"queue {config.name}: cannot be created on {endpoint}: {exc}") from None
            made[config.name] = describe_queue(sqs, url)
            log.info("queue %s: %s", config.name, url)
    return made


def describe_queue(sqs: Any, url: str) -> Queue:
    attrs = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn", "VisibilityTimeout", "FifoQueue"])
    attributes = attrs["Attributes"]
    arn = attributes["QueueArn"]
    return Queue(
        name=queue_name_of(arn),
        url=url,
        arn=arn,
        visibility_timeout_s=int(attributes.get("VisibilityTimeout", "30")),
        fifo=attributes.get("FifoQueue") == "true",
    )


def find_queue(sqs: Any, name_or_arn: str, endpoint: str) -> Queue:
    """A queue by name or ARN; ``ResourceNotFoundException``-worded ConfigError when the endpoint has none."""
    try:
        name = queue_name_of(name_or_arn) if name_or_arn.startswith("arn:") else name_or_arn
    except ValueError as exc:
        raise ConfigError(str(exc)) from None
    try:
        url = sqs.get_queue_url(QueueName=name)["QueueUrl"]
    except Exception as exc:  # a boundary: QueueDoesNotExist, or the endpoint is unreachable
        if "NonExistentQueue" in str(exc) or "QueueDoesNotExist" in str(exc):
            raise ConfigError(
                f"queue {name_or_arn} does not exist on {endpoint} (declare it under [queues], or in the template)"
            ) from None
        raise ConfigError(f"the AWS endpoint {endpoint} cannot be reached: {exc}") from None
    return describe_queue(sqs, url)


def create_buckets(s3: Any, sqs: Any, configs: tuple[BucketConfig, ...], endpoint: str) -> None:
    """Create every bucket (an existing one of ours is kept) and point its notifications at their queues."""
    for config in configs:
        try:
            s3.create_bucket(Bucket=config.name)
        except Exception as exc:  # a boundary: BucketAlreadyOwnedByYou is fine, the rest is named
            if "BucketAlreadyOwnedByYou" not in str(exc):
                raise ConfigError(f"bucket {config.name}: cannot be created on {endpoint}: {exc}") from None
        if not config.notifications:
            continue
        queue_configurations = [
            {"QueueArn": find_queue(sqs, n.queue, endpoint).arn, "Events": list(n.events)} for n in config.notifications
        ]
        s3.put_bucket_notification_configuration(
            Bucket=config.name, NotificationConfiguration={"QueueConfigurations": queue_configurations}
        )
        log.info("bucket %s: notifies %s", config.name, ", ".join(n.queue for n in config.notifications))

"""What invokes functions besides callers: SQS queues (and their dead-letter queues), S3 buckets that notify them,
SQS event source mappings and schedules, as frozen dataclasses, read from a TOML file's ``[queues.NAME]``,
``[buckets.NAME]``, ``[[functions.NAME.sqs]]`` and ``[[functions.NAME.schedules]]`` tables."""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import ConfigError

DEFAULT_VISIBILITY_TIMEOUT_S = 30  # SQS's default
DEFAULT_POLLERS = 5  # pollers of a mapping without MaximumConcurrency (Lambda starts with five)


@dataclass(frozen=True)
class QueueConfig:
    """An SQS queue created on the AWS endpoint at start."""

    name: str
    visibility_timeout_s: int = DEFAULT_VISIBILITY_TIMEOUT_S
    fifo: bool = False
    dead_letter_queue: str | None = None  # a queue name or ARN: the redrive policy's target
    max_receive_count: int | None = None
    content_based_deduplication: bool = False

    def __post_init__(self) -> None:
        if self.fifo != self.name.endswith(".fifo"):
            raise ConfigError(f"queue {self.name}: a FIFO queue's name ends in .fifo, and only a FIFO queue's does")
        if not 0 <= self.visibility_timeout_s <= 43200:
            raise ConfigError(f"queue {self.name}: visibility timeout must be 0-43200 seconds")
        if (self.dead_letter_queue is None) != (self.max_receive_count is None):
            raise ConfigError(f"queue {self.name}: a redrive policy needs both dead_letter_queue and max_receive_count")
        if self.max_receive_count is not None and not 1 <= self.max_receive_count <= 1000:
            raise ConfigError(f"queue {self.name}: max_receive_count must be 1-1000")


@dataclass(frozen=True)
class QueueNotification:
    """A bucket's ``NotificationConfiguration.QueueConfigurations`` entry: events on objects sent to a queue."""

    queue: str  # a queue name or ARN
    events: tuple[str, ...] = ("s3:ObjectCreated:*",)


@dataclass(frozen=True)
class BucketConfig:
    """An S3 bucket created on the AWS endpoint at start, with its notifications to queues."""

    name: str
    notifications: tuple[QueueNotification, ...] = ()


@dataclass(frozen=True)
class SqsMappingConfig:
    """An SQS event source mapping, with the names and limits of Lambda's ``CreateEventSourceMapping``."""

    function: str
    queue: str  # a queue name or ARN
    batch_size: int = 10
    max_batching_window_s: int = 0
    report_batch_item_failures: bool = False
    max_concurrency: int | None = None  # ScalingConfig.MaximumConcurrency
    enabled: bool = True
    uuid: str = field(default_factory=lambda: str(uuid.uuid4()))

    def __post_init__(self) -> None:
        where = f"function {self.function}: SQS mapping of {self.queue}"
        if not 1 <= self.batch_size <= 10000:
            raise ConfigError(f"{where}: BatchSize must be 1-10000")
        if not 0 <= self.max_batching_window_s <= 300:
            raise ConfigError(f"{where}: MaximumBatchingWindowInSeconds must be 0-300")
        if self.batch_size > 10 and self.max_batching_window_s < 1:
            raise ConfigError(
                f"{where}: a BatchSize above 10 needs MaximumBatchingWindowInSeconds of at least 1 (as Lambda asks)"
            )
        if self.max_concurrency is not None and not 2 <= self.max_concurrency <= 1000:
            raise ConfigError(f"{where}: ScalingConfig.MaximumConcurrency must be 2-1000")

    @property
    def pollers(self) -> int:
        """At most this many pollers, each with one batch in flight; they scale up from one while batches come
        back full."""
        return self.max_concurrency or DEFAULT_POLLERS


@dataclass(frozen=True)
class ScheduleConfig:
    """A schedule: ``<FunctionLogicalId>.<EventName>``, a rate or cron expression, delivered asynchronously."""

    name: str
    function: str
    expression: str
    timezone: str | None = None  # ScheduleV2's ScheduleExpressionTimezone
    input: str | None = None  # the JSON the function receives instead of the scheduled event
    enabled: bool = True
    scheduler: bool = False  # ScheduleV2: EventBridge Scheduler rather than an EventBridge rule

    def __post_init__(self) -> None:
        # The expression itself is parsed by the schedule source when the emulator starts.
        if self.timezone is not None and not self.scheduler:
            raise ConfigError(f"schedule {self.name}: a time zone needs ScheduleV2 (EventBridge rules run in UTC)")


@dataclass(frozen=True)
class EventsConfig:
    queues: tuple[QueueConfig, ...] = ()
    sqs_mappings: tuple[SqsMappingConfig, ...] = ()
    schedules: tuple[ScheduleConfig, ...] = ()
    buckets: tuple[BucketConfig, ...] = ()

    @property
    def uses_aws(self) -> bool:
        return bool(self.queues or self.sqs_mappings or self.buckets)

    def merged(self, other: EventsConfig) -> EventsConfig:
        return EventsConfig(
            self.queues + other.queues,
            self.sqs_mappings + other.sqs_mappings,
            self.schedules + other.schedules,
            self.buckets + other.buckets,
        )


def _take(spec: dict[str, Any], keys: Mapping[str, Any], where: str) -> dict[str, Any]:
    unknown = sorted(set(spec) - set(keys))
    if unknown:
        raise ConfigError(f"{where}: unknown key(s) {', '.join(unknown)}; known: {', '.join(sorted(keys))}")
    out: dict[str, Any] = {}
    for key, value in spec.items():
        field_name, parse = keys[key]
        try:
            out[field_name] = parse(value)
        except (TypeError, ValueError) as exc:
            raise ConfigError(f"{where}: {key} = {value!r}: {exc}") from None
    return out


def _bool(value: Any) -> bool:
    if not isinstance(value, bool):
        raise TypeError("expected true or false")
    return value


_QUEUE_KEYS = {
    "visibility_timeout": ("visibility_timeout_s", int),
    "fifo": ("fifo", _bool),
    "dead_letter_queue": ("dead_letter_queue", str),
    "max_receive_count": ("max_receive_count", int),
    "content_based_deduplication": ("content_based_deduplication", _bool),
}
_SQS_KEYS = {
    "queue": ("queue", str),
    "batch_size": ("batch_size", int),
    "maximum_batching_window": ("max_batching_window_s", int),
    "report_batch_item_failures": ("report_batch_item_failures", _bool),
    "maximum_concurrency": ("max_concurrency", int),
    "enabled": ("enabled", _bool),
}
_SCHEDULE_KEYS = {
    "name": ("name", str),
    "expression": ("expression", str),
    "timezone": ("timezone", str),
    "input": ("input", str),
    "enabled": ("enabled", _bool),
    "scheduler": ("scheduler", _bool),
}


def events_from_toml(data: dict[str, Any], file: Path) -> EventsConfig:
    """Takes ``[queues]`` and each function's ``sqs`` and ``schedules`` out of ``data`` (so that the function
    tables hold only function settings) and returns them."""
    queues = []
    for name, spec in (data.pop("queues", None) or {}).items():
        queues.append(QueueConfig(name=name, **_take(dict(spec), _QUEUE_KEYS, f"{file}: [queues.{name}]")))
    buckets = []
    for name, spec in (data.pop("buckets", None) or {}).items():
        where = f"{file}: [buckets.{name}]"
        notifications = []
        for item in (spec or {}).pop("queue_notifications", None) or []:
            settings = _take(dict(item), {"queue": ("queue", str), "events": ("events", tuple)}, where)
            if "queue" not in settings:
                raise ConfigError(f"{where}: each queue_notifications entry needs 'queue'")
            notifications.append(QueueNotification(**settings))
        _take(dict(spec or {}), {}, where)
        buckets.append(BucketConfig(name, tuple(notifications)))
    mappings, schedules = [], []
    for function, spec in (data.get("functions") or {}).items():
        if not isinstance(spec, dict):
            continue
        for i, item in enumerate(spec.pop("sqs", None) or []):
            where = f"{file}: [[functions.{function}.sqs]] #{i + 1}"
            settings = _take(dict(item), _SQS_KEYS, where)
            if "queue" not in settings:
                raise ConfigError(f"{where}: 'queue' (a queue name or ARN) is required")
            mappings.append(SqsMappingConfig(function=function, **settings))
        for i, item in enumerate(spec.pop("schedules", None) or []):
            where = f"{file}: [[functions.{function}.schedules]] #{i + 1}"
            settings = _take(dict(item), _SCHEDULE_KEYS, where)
            if "expression" not in settings:
                raise ConfigError(f"{where}: 'expression' (rate(...) or cron(...)) is required")
            settings["name"] = f"{function}.{settings.get('name', f'Schedule{i + 1}')}"
            schedules.append(ScheduleConfig(function=function, **settings))
    return EventsConfig(tuple(queues), tuple(mappings), tuple(schedules), tuple(buckets))

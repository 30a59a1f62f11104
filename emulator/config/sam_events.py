"""What a SAM template says besides its functions: ``AWS::SQS::Queue`` and ``AWS::S3::Bucket`` resources (created
on the AWS endpoint at start) and the functions' ``Events`` of type ``SQS``, ``Schedule`` and ``ScheduleV2``, as an
``EventsConfig``. ``!GetAtt Queue.Arn`` and ``!Ref Queue`` name a queue of the template; other event types are
named in the functions' warnings (``sam.py``)."""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from ..errors import ConfigError
from .cloudformation import _Resolver, _Unresolvable
from .events import BucketConfig, EventsConfig, QueueConfig, QueueNotification, ScheduleConfig, SqsMappingConfig
from .sam import LAMBDA_FUNCTION, SERVERLESS_FUNCTION, load_template

log = logging.getLogger("lambda_freeze.sam")

SQS_QUEUE = "AWS::SQS::Queue"
S3_BUCKET = "AWS::S3::Bucket"


class _Resources(_Resolver):
    """The template's resolver, with ``!GetAtt Q.Arn``, ``!GetAtt Q.QueueName`` and ``!Ref Q`` of a queue (or a
    bucket) standing for its name: what the emulator's queue settings take."""

    def __init__(self, template: Mapping[str, Any], names: Mapping[str, str]):
        super().__init__(template)
        self.names = names
        self._functions["Fn::GetAtt"] = self._getatt
        self._functions["Ref"] = self._ref_resource

    def _getatt(self, arg: Any) -> Any:
        logical_id, attribute = arg.split(".", 1) if isinstance(arg, str) else arg
        if logical_id in self.names and attribute in ("Arn", "QueueName", "QueueUrl"):
            return self.names[logical_id]
        raise _Unresolvable(f"!GetAtt {logical_id}.{attribute}: not a queue or bucket of this template")

    def _ref_resource(self, name: Any) -> Any:
        if name in self.names:
            return self.names[name]
        return self._ref(name)


def _names(resources: Mapping[str, Any]) -> dict[str, str]:
    names = {}
    for logical_id, resource in resources.items():
        if not isinstance(resource, dict):
            continue
        props = resource.get("Properties") or {}
        if resource.get("Type") == SQS_QUEUE:
            name = props.get("QueueName")
            fifo = str(props.get("FifoQueue", "false")).lower() == "true"
            names[logical_id] = name if isinstance(name, str) else logical_id + (".fifo" if fifo else "")
        elif resource.get("Type") == S3_BUCKET:
            name = props.get("BucketName")
            names[logical_id] = name if isinstance(name, str) else logical_id.lower()
    return names


def events_from_template(path: Path) -> EventsConfig:
    path = Path(path)
    template = load_template(path)
    resources = template.get("Resources") or {}
    names = _names(resources)
    resolve = _Resources(template, names)
    queues: list[QueueConfig] = []
    buckets: list[BucketConfig] = []
    mappings: list[SqsMappingConfig] = []
    schedules: list[ScheduleConfig] = []
    for logical_id, resource in resources.items():
        if not isinstance(resource, dict):
            continue
        where = f"{path}: Resources.{logical_id}"
        try:
            props = resolve(resource.get("Properties") or {})
        except _Unresolvable as exc:
            if resource.get("Type") in (SQS_QUEUE, S3_BUCKET):
                raise ConfigError(f"{where}: {exc}") from None
            continue  # a function's own problems are sam.py's to report
        kind = resource.get("Type")
        try:
            if kind == SQS_QUEUE:
                queues.append(_queue(names[logical_id], props))
            elif kind == S3_BUCKET:
                buckets.append(_bucket(names[logical_id], props))
            elif kind in (SERVERLESS_FUNCTION, LAMBDA_FUNCTION):
                function = props.get("FunctionName") if isinstance(props.get("FunctionName"), str) else logical_id
                for event_name, event in (props.get("Events") or {}).items():
                    _event(function, logical_id, event_name, event, mappings, schedules)
        except (KeyError, TypeError, ValueError) as exc:
            raise ConfigError(f"{where}: {exc}") from None
    return EventsConfig(tuple(queues), tuple(mappings), tuple(schedules), tuple(buckets))


def _queue(name: str, props: Mapping[str, Any]) -> QueueConfig:
    redrive = props.get("RedrivePolicy")
    if isinstance(redrive, str):
        redrive = json.loads(redrive)
    return QueueConfig(
        name=name,
        visibility_timeout_s=int(props.get("VisibilityTimeout", 30)),
        fifo=str(props.get("FifoQueue", "false")).lower() == "true",
        content_based_deduplication=str(props.get("ContentBasedDeduplication", "false")).lower() == "true",
        dead_letter_queue=redrive["deadLetterTargetArn"] if redrive else None,
        max_receive_count=int(redrive["maxReceiveCount"]) if redrive else None,
    )


def _bucket(name: str, props: Mapping[str, Any]) -> BucketConfig:
    configurations = (props.get("NotificationConfiguration") or {}).get("QueueConfigurations") or []
    return BucketConfig(
        name=name,
        notifications=tuple(QueueNotification(queue=c["Queue"], events=(c["Event"],)) for c in configurations),
    )


def _event(
    function: str,
    logical_id: str,
    event_name: str,
    event: Mapping[str, Any],
    mappings: list[SqsMappingConfig],
    schedules: list[ScheduleConfig],
) -> None:
    kind, props = event.get("Type"), event.get("Properties") or {}
    if kind == "SQS":
        scaling = props.get("ScalingConfig") or {}
        mappings.append(
            SqsMappingConfig(
                function=function,
                queue=props["Queue"],
                batch_size=int(props.get("BatchSize", 10)),
                max_batching_window_s=int(props.get("MaximumBatchingWindowInSeconds", 0)),
                report_batch_item_failures="ReportBatchItemFailures" in (props.get("FunctionResponseTypes") or []),
                max_concurrency=int(scaling["MaximumConcurrency"]) if "MaximumConcurrency" in scaling else None,
                enabled=bool(props.get("Enabled", True)),
            )
        )
    elif kind in ("Schedule", "ScheduleV2"):
        v2 = kind == "ScheduleV2"
        state = str(props.get("State", "ENABLED")).upper()
        raw_input = props.get("Input")
        schedules.append(
            ScheduleConfig(
                name=f"{logical_id}.{event_name}",
                function=function,
                expression=props["ScheduleExpression" if v2 else "Schedule"],
                timezone=props.get("ScheduleExpressionTimezone") if v2 else None,
                input=raw_input if isinstance(raw_input, str) or raw_input is None else json.dumps(raw_input),
                enabled=bool(props.get("Enabled", True)) and state != "DISABLED",
                scheduler=v2,
            )
        )

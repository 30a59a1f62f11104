"""The event a schedule delivers: EventBridge's "Scheduled Event" (SAM ``Schedule``; ``ScheduleV2`` names the
EventBridge Scheduler as its source), or the schedule's own ``Input`` when it has one."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime
from typing import Any


def rule_arn(region: str, account_id: str, name: str) -> str:
    return f"arn:aws:events:{region}:{account_id}:rule/{name}"


def scheduler_arn(region: str, account_id: str, name: str) -> str:
    return f"arn:aws:scheduler:{region}:{account_id}:schedule/default/{name}"


def scheduled_event(
    *, resource_arn: str, region: str, account_id: str, when: datetime | None = None, source: str = "aws.events"
) -> dict[str, Any]:
    when = when or datetime.now(UTC)
    return {
        "version": "0",
        "id": str(uuid.uuid4()),
        "detail-type": "Scheduled Event",
        "source": source,
        "account": account_id,
        "time": when.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "region": region,
        "resources": [resource_arn],
        "detail": {},
    }


def payload(input_json: str | None, **scheduled: Any) -> bytes:
    """What the function receives: the schedule's ``Input`` as given, else the scheduled event."""
    if input_json is not None:
        return input_json.encode()
    return json.dumps(scheduled_event(**scheduled)).encode()


def example(
    *,
    rule: str = "example-schedule",
    detail: dict[str, Any] | None = None,
    region: str = "us-east-1",
    account_id: str = "123456789012",
) -> dict[str, Any]:
    """The Scheduled Event an EventBridge rule ``rule`` delivers; ``detail`` is ``{}`` as AWS sends it, unless given."""
    built = scheduled_event(resource_arn=rule_arn(region, account_id, rule), region=region, account_id=account_id)
    if detail is not None:
        built["detail"] = detail
    return built

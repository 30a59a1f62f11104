"""Schedules (SAM ``Schedule`` and ``ScheduleV2``): each fires at the times its expression names, and each firing
is an asynchronous invocation through the function's queue (retries, maximum event age, on-failure records), as
EventBridge invokes Lambda. ``trigger`` fires one now."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from ...config.events import ScheduleConfig
from ...engine.timeline import Timeline
from ...errors import ConfigError, FunctionNotFound, LambdaFreezeError
from ..async_invoke import AsyncEvent, AsyncQueue
from ..events import schedule as schedule_events
from .expressions import Expression, parse

log = logging.getLogger("lambda_freeze.schedule")


class ScheduleNotFound(LambdaFreezeError):
    error_type = "ResourceNotFoundException"
    status = 404


class Schedule:
    def __init__(self, config: ScheduleConfig, expression: Expression, queue: AsyncQueue):
        self.config = config
        self.expression = expression
        self.queue = queue
        self.next_at: datetime | None = None
        self.fired = 0
        self.last_request_id: str | None = None
        self._timer: asyncio.Task[None] | None = None

    def fire(self, when: datetime | None = None) -> str:
        pool_config = self.queue.config
        name = self.config.name.replace(".", "-")
        if self.config.scheduler:
            arn = schedule_events.scheduler_arn(pool_config.region, pool_config.account_id, name)
        else:
            arn = schedule_events.rule_arn(pool_config.region, pool_config.account_id, name)
        payload = schedule_events.payload(
            self.config.input,
            resource_arn=arn,
            region=pool_config.region,
            account_id=pool_config.account_id,
            when=when,
            source="aws.scheduler" if self.config.scheduler else "aws.events",
        )
        event = AsyncEvent(pool_config.name, payload)
        self.queue.submit(event)
        self.fired += 1
        self.last_request_id = event.request_id
        return event.request_id

    def start(self) -> None:
        if self.config.enabled:
            self._timer = asyncio.get_running_loop().create_task(self._run(), name=f"schedule {self.config.name}")

    async def _run(self) -> None:
        now = datetime.now(UTC)
        while True:
            self.next_at = self.expression.next_after(now)
            # A timer that IS the schedule: it waits for the wall-clock time the expression names.
            await asyncio.sleep(max(0.0, (self.next_at - datetime.now(UTC)).total_seconds()))
            now = self.next_at
            self.fire(self.next_at)

    async def close(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            try:
                await self._timer
            except asyncio.CancelledError:
                pass

    def describe(self) -> dict[str, Any]:
        return {
            "name": self.config.name,
            "function": self.config.function,
            "expression": self.config.expression,
            "timezone": self.config.timezone,
            "type": "ScheduleV2" if self.config.scheduler else "Schedule",
            "enabled": self.config.enabled,
            "next": self.next_at.isoformat() if self.next_at and self.config.enabled else None,
            "fired": self.fired,
            "last_request_id": self.last_request_id,
        }


class Schedules:
    def __init__(self, queues: Mapping[str, AsyncQueue], timeline: Timeline):
        self._queues = queues
        self._timeline = timeline
        self.schedules: dict[str, Schedule] = {}

    def add(self, config: ScheduleConfig) -> Schedule:
        queue = self._queues.get(config.function)
        if queue is None:
            raise FunctionNotFound(f"schedule {config.name}: function {config.function} is not served here")
        if config.name in self.schedules:
            raise ConfigError(f"schedule {config.name} is defined twice")
        schedule = Schedule(config, parse(config.expression, timezone=config.timezone), queue)
        self.schedules[config.name] = schedule
        schedule.start()
        return schedule

    def trigger(self, name: str) -> str:
        """Fire a schedule now (enabled or not): the request id of the asynchronous invocation."""
        schedule = self.schedules.get(name)
        if schedule is None:
            known = ", ".join(sorted(self.schedules)) or "none"
            raise ScheduleNotFound(f"schedule {name} does not exist (schedules: {known})")
        request_id = schedule.fire()
        self._timeline.record(
            "schedule", schedule.config.function, schedule=name, what="triggered", request_id=request_id
        )
        return request_id

    def describe(self) -> list[dict[str, Any]]:
        return [s.describe() for s in self.schedules.values()]

    async def close(self) -> None:
        await asyncio.gather(*(s.close() for s in self.schedules.values()))

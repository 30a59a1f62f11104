"""The sources that are not callers, put together: the AWS endpoint functions reach (given, or an embedded moto
server), the queues created on it, the SQS event source mappings and the schedules; the engine side of the
control-plane API (``runtime_api.EventSourcesBackend``) and of their inspection views.

Lifecycle: ``await prepare()`` (endpoint and queues, before the functions) → ``await start()`` (mappings and
schedules, once the functions are there) → ``await close()``.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from ..config.events import EventsConfig, SqsMappingConfig
from ..config.settings import FunctionConfig
from ..engine.pool import FunctionPool
from ..engine.timeline import Timeline
from ..errors import ConfigError, FunctionNotFound
from .async_invoke import AsyncQueue

if TYPE_CHECKING:  # loaded when queues, mappings, buckets or schedules are used: serve without them needs none
    from .aws.endpoint import AwsEndpoint
    from .schedule.scheduler import Schedules
    from .sqs.mappings import SqsMappings

log = logging.getLogger("lambda_freeze.events")


class EventSources:
    def __init__(
        self,
        events: EventsConfig,
        aws_endpoint: str | None,
        functions: Mapping[str, FunctionPool],
        queues: Mapping[str, AsyncQueue],
        timeline: Timeline,
    ):
        self.config = events
        self._functions = functions
        self.endpoint: AwsEndpoint | None = None
        if aws_endpoint is not None or events.uses_aws:
            from .aws.endpoint import AwsEndpoint

            self.endpoint = AwsEndpoint(aws_endpoint)
        self._queues = queues
        self._schedules: Schedules | None = None
        self.mappings: SqsMappings | None = None
        self._timeline = timeline

    @property
    def schedules(self) -> Schedules:
        """The schedules, made on first use."""
        if self._schedules is None:
            from .schedule.scheduler import Schedules

            self._schedules = Schedules(self._queues, self._timeline)
        return self._schedules

    async def prepare(self) -> None:
        if self.endpoint is None:
            return
        from .aws.resources import create_buckets, create_queues
        from .sqs.mappings import SqsMappings

        await self.endpoint.start()
        self.mappings = SqsMappings(self._functions, self.endpoint, self._timeline)
        if self.config.queues or self.config.buckets:
            sqs = self.endpoint.client("sqs")
            await asyncio.to_thread(create_queues, sqs, self.config.queues, self.endpoint.url)
            s3 = self.endpoint.client("s3")
            await asyncio.to_thread(create_buckets, s3, sqs, self.config.buckets, self.endpoint.url)

    def function_config(self, config: FunctionConfig) -> FunctionConfig:
        """The function as served: its SDK reaches the AWS endpoint (unless it names one itself)."""
        if self.endpoint is None or "AWS_ENDPOINT_URL" in config.env:
            return config
        return dataclasses.replace(config, env={**self.endpoint.function_env(), **config.env})

    async def start(self) -> None:
        for schedule in self.config.schedules:
            self.schedules.add(schedule)
        for mapping in self.config.sqs_mappings:
            await self._require_mappings().create(mapping)

    def _require_mappings(self) -> SqsMappings:
        if self.mappings is None:
            raise ConfigError("SQS event source mappings need an AWS endpoint (--aws-endpoint, or declared queues)")
        return self.mappings

    async def close(self) -> None:
        if self._schedules is not None:
            await self._schedules.close()
        if self.mappings is not None:
            await self.mappings.close()
        if self.endpoint is not None:
            await self.endpoint.close()

    # --------------------------------------------------------------------------------- control plane
    async def create_mapping(self, request: Mapping[str, Any]) -> Mapping[str, object]:
        function = request.get("FunctionName")
        if not isinstance(function, str) or not function:
            raise ConfigError("FunctionName is required")
        if function.split(":function:")[-1].split(":")[0] not in self._functions:
            raise FunctionNotFound(f"Function not found: {function} (an SQS mapping needs a function served here)")
        arn = request.get("EventSourceArn")
        if not isinstance(arn, str) or not arn.startswith("arn:aws:sqs:"):
            raise ConfigError(f"EventSourceArn {arn!r}: only SQS queues (arn:aws:sqs:...) are emulated")
        config = SqsMappingConfig(function=function, queue=arn, **_mapping_settings(request))
        mapping = await self._require_mappings().create(config)
        return mapping.describe()

    def list_mappings(self, function: str | None, source_arn: str | None) -> Sequence[Mapping[str, object]]:
        if self.mappings is None:
            return []
        return [m.describe() for m in self.mappings.list(function=function, queue_arn=source_arn)]

    def _existing(self) -> SqsMappings:
        if self.mappings is None:  # no endpoint: no mapping can exist
            from .sqs.mappings import MappingNotFound

            raise MappingNotFound("The resource you requested does not exist. (Service: Lambda)")
        return self.mappings

    def get_mapping(self, uuid: str) -> Mapping[str, object]:
        return self._existing().get(uuid).describe()

    async def update_mapping(self, uuid: str, request: Mapping[str, Any]) -> Mapping[str, object]:
        mappings = self._existing()
        mapping = mappings.get(uuid)
        settings = _mapping_settings(request)
        enabled = settings.pop("enabled", None)
        if settings:  # batching or scaling changed: the pollers start again with the new settings
            await mappings.delete(uuid)
            config = dataclasses.replace(mapping.config, **settings, enabled=mapping.enabled)
            mapping = await mappings.create(config)
        if enabled is not None:
            mapping.set_enabled(enabled)
        return mapping.describe()

    async def delete_mapping(self, uuid: str) -> Mapping[str, object]:
        mapping = await self._existing().delete(uuid)
        return {**mapping.describe(), "State": "Deleting"}

    def describe_schedules(self) -> Sequence[Mapping[str, object]]:
        return self.schedules.describe()

    def trigger(self, name: str) -> str:
        return self.schedules.trigger(name)


def _integer(request: Mapping[str, Any], key: str) -> int:
    value = request[key]
    if not isinstance(value, int) or isinstance(value, bool):
        raise ConfigError(
            f"1 validation error detected: Value {value!r} at '{key}' failed to satisfy constraint: "
            "Member must be an integer"
        )
    return value


def _mapping_settings(request: Mapping[str, Any]) -> dict[str, Any]:
    """The settings of a Create or Update call, checked as Lambda checks them."""
    settings: dict[str, Any] = {}
    for key, field_name in (("BatchSize", "batch_size"), ("MaximumBatchingWindowInSeconds", "max_batching_window_s")):
        if key in request:
            settings[field_name] = _integer(request, key)
    if "Enabled" in request:
        if not isinstance(request["Enabled"], bool):
            raise ConfigError(f"Enabled {request['Enabled']!r}: expected true or false")
        settings["enabled"] = request["Enabled"]
    if "FunctionResponseTypes" in request:
        types = request["FunctionResponseTypes"] or []
        if not isinstance(types, list) or any(t != "ReportBatchItemFailures" for t in types):
            raise ConfigError(f"FunctionResponseTypes {types!r}: only ReportBatchItemFailures exists")
        settings["report_batch_item_failures"] = bool(types)
    scaling = request.get("ScalingConfig")
    if scaling is not None:
        if not isinstance(scaling, dict):
            raise ConfigError('ScalingConfig must be an object: {"MaximumConcurrency": N}')
        if "MaximumConcurrency" in scaling:
            settings["max_concurrency"] = _integer(scaling, "MaximumConcurrency")
    return settings

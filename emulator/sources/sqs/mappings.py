"""The emulator's SQS event source mappings: created from the configuration or by the control-plane API, checked
as Lambda checks them (the function exists, the queue exists, its visibility timeout is no shorter than the
function's timeout), listed, switched on and off, deleted."""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import Mapping
from typing import Any

from ...config.events import SqsMappingConfig
from ...engine.pool import FunctionPool
from ...engine.timeline import Timeline
from ...errors import ConfigError, FunctionNotFound, LambdaFreezeError
from ..aws.endpoint import AwsEndpoint
from ..aws.resources import find_queue
from .mapping import SqsMapping


class MappingNotFound(LambdaFreezeError):
    error_type = "ResourceNotFoundException"
    status = 404


class SqsMappings:
    def __init__(self, functions: Mapping[str, FunctionPool], endpoint: AwsEndpoint, timeline: Timeline):
        self._functions = functions  # the emulator's own table: functions added later are found too
        self._endpoint = endpoint
        self._timeline = timeline
        self._sqs: Any = None
        self.mappings: dict[str, SqsMapping] = {}

    def _client(self) -> Any:
        if self._sqs is None:
            # One client for every poller (botocore clients are thread-safe); enough connections for them all.
            self._sqs = self._endpoint.client("sqs", max_pool_connections=64, read_timeout=60)
        return self._sqs

    def _pool(self, function: str) -> FunctionPool:
        name = function.split(":function:")[-1].split(":")[0] if ":function:" in function else function
        pool = self._functions.get(name)
        if pool is None:
            raise FunctionNotFound(f"Function not found: {function} (an SQS mapping needs a function served here)")
        return pool

    async def create(self, config: SqsMappingConfig) -> SqsMapping:
        pool = self._pool(config.function)
        config = dataclasses.replace(config, function=pool.config.name)
        queue = await asyncio.to_thread(find_queue, self._client(), config.queue, self._endpoint.url)
        if queue.visibility_timeout_s < pool.config.timeout_s:
            raise ConfigError(
                f"Queue visibility timeout: {queue.visibility_timeout_s} seconds is less than Function timeout: "
                f"{pool.config.timeout_s:g} seconds (queue {queue.name}, function {pool.config.name}; AWS advises "
                "at least six times the function timeout)"
            )
        mapping = SqsMapping(config, pool, queue, self._client(), self._timeline, endpoint=self._endpoint.url)
        self.mappings[config.uuid] = mapping
        mapping.start()
        return mapping

    def get(self, uuid: str) -> SqsMapping:
        mapping = self.mappings.get(uuid)
        if mapping is None:
            raise MappingNotFound(f"The resource you requested does not exist. (Service: Lambda, mapping {uuid})")
        return mapping

    def list(self, *, function: str | None = None, queue_arn: str | None = None) -> list[SqsMapping]:
        name = self._pool(function).config.name if function else None
        return [
            m
            for m in self.mappings.values()
            if (name is None or m.pool.config.name == name) and (queue_arn is None or m.queue.arn == queue_arn)
        ]

    async def delete(self, uuid: str) -> SqsMapping:
        mapping = self.get(uuid)
        await mapping.close()
        del self.mappings[uuid]
        return mapping

    async def close(self) -> None:
        await asyncio.gather(*(m.close() for m in self.mappings.values()))

"""The event source mapping calls of Lambda's control plane (2015-03-31: Create, List, Get, Update, Delete), so
that ``aws lambda create-event-source-mapping --endpoint-url`` and boto3 work, and the inspection views of mappings
and schedules, with ``POST /_lambda-freeze/schedules/{name}/trigger`` to fire one now. Routes on the Invoke API's
port; the engine is reached through ``EventSourcesBackend``."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Protocol

import orjson

from .errors import HttpApiError
from .http import Request, Response, Router

MAPPINGS = "/2015-03-31/event-source-mappings/"


class EventSourcesBackend(Protocol):
    """Mapping documents are in the shape of Lambda's ``EventSourceMappingConfiguration``."""

    async def create_mapping(self, request: Mapping[str, Any]) -> Mapping[str, object]: ...

    def list_mappings(self, function: str | None, source_arn: str | None) -> Sequence[Mapping[str, object]]: ...

    def get_mapping(self, uuid: str) -> Mapping[str, object]: ...

    async def update_mapping(self, uuid: str, request: Mapping[str, Any]) -> Mapping[str, object]: ...

    async def delete_mapping(self, uuid: str) -> Mapping[str, object]: ...

    def describe_schedules(self) -> Sequence[Mapping[str, object]]: ...

    def trigger(self, name: str) -> str:
        """Fire the schedule now; the request id of its asynchronous invocation."""
        ...


def _json(status: int, document: object) -> Response:
    return Response(status, orjson.dumps(document, default=str), content_type="application/json")


async def _body(request: Request) -> dict[str, Any]:
    raw = await request.read()
    try:
        body = orjson.loads(raw or b"{}")
    except orjson.JSONDecodeError:
        raise HttpApiError(400, "InvalidRequestContentException", "The request body is not JSON") from None
    if not isinstance(body, dict):
        raise HttpApiError(400, "InvalidRequestContentException", "The request body is not a JSON object")
    return body


def add_routes(router: Router, backend: EventSourcesBackend) -> None:
    async def create(request: Request) -> Response:
        return _json(202, await backend.create_mapping(await _body(request)))

    async def list_all(request: Request) -> Response:
        mappings = backend.list_mappings(request.query.get("FunctionName"), request.query.get("EventSourceArn"))
        return _json(200, {"EventSourceMappings": list(mappings)})

    async def get(request: Request) -> Response:
        return _json(200, backend.get_mapping(request.params["uuid"]))

    async def update(request: Request) -> Response:
        return _json(202, await backend.update_mapping(request.params["uuid"], await _body(request)))

    async def delete(request: Request) -> Response:
        return _json(202, await backend.delete_mapping(request.params["uuid"]))

    async def inspect_mappings(request: Request) -> Response:
        return _json(200, list(backend.list_mappings(None, None)))

    async def schedules(request: Request) -> Response:
        return _json(200, list(backend.describe_schedules()))

    async def trigger(request: Request) -> Response:
        return _json(202, {"RequestId": backend.trigger(request.params["name"])})

    for collection in (MAPPINGS, MAPPINGS.rstrip("/")):  # the model's URI ends in "/", botocore drops it
        router.add("POST", collection, create)
        router.add("GET", collection, list_all)
    router.add("GET", MAPPINGS + "{uuid}", get)
    router.add("PUT", MAPPINGS + "{uuid}", update)
    router.add("DELETE", MAPPINGS + "{uuid}", delete)
    router.add("GET", "/_lambda-freeze/event-source-mappings", inspect_mappings)
    router.add("GET", "/_lambda-freeze/schedules", schedules)
    router.add("POST", "/_lambda-freeze/schedules/{name}/trigger", trigger)

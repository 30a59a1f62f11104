"""The Lambda control-plane calls that users' tools make against a local endpoint (ListFunctions, GetFunction,
GetFunctionConfiguration, GetAccountSettings), on the Invoke API's port, in AWS's REST-JSON shapes."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Protocol

import orjson

from .errors import HttpApiError
from .http import Request, Response, Router

MAX_ITEMS = 50  # ListFunctions' page size when MaxItems is not given (AWS: 50, at most 10,000)


class ControlBackend(Protocol):
    """The functions served, as the control plane describes them; each mapping is in AWS's shape already."""

    def function_configurations(self) -> Sequence[Mapping[str, object]]:
        """Every function's ``FunctionConfiguration``, ordered by name."""
        ...

    def get_function(self, name: str, qualifier: str | None) -> Mapping[str, object]:
        """GetFunction's answer (``Configuration``, ``Code``, ...); raises an ``ApiError`` (404) when unknown."""
        ...

    def account_settings(self) -> Mapping[str, object]: ...


def add_routes(router: Router, backend: ControlBackend) -> None:
    async def list_functions(request: Request) -> Response:
        configurations = list(backend.function_configurations())
        max_items = _max_items(request.query.get("MaxItems"))
        marker = request.query.get("Marker")
        # The marker is the name of the first function of the next page; functions are ordered by name, so any
        # marker is a place in the list (one whose function went away since still is).
        start = 0 if not marker else sum(1 for c in configurations if str(c["FunctionName"]) < marker)
        page = configurations[start : start + max_items]
        body: dict[str, object] = {"Functions": page}
        if start + max_items < len(configurations):
            body["NextMarker"] = configurations[start + max_items]["FunctionName"]
        return _json(body)

    async def get_function(request: Request) -> Response:
        return _json(backend.get_function(request.params["name"], request.query.get("Qualifier")))

    async def get_configuration(request: Request) -> Response:
        return _json(backend.get_function(request.params["name"], request.query.get("Qualifier"))["Configuration"])

    async def account_settings(request: Request) -> Response:
        return _json(backend.account_settings())

    # AWS documents ListFunctions and GetAccountSettings with a trailing slash; botocore (and so the AWS CLI) drops it.
    router.add("GET", "/2015-03-31/functions", list_functions)
    router.add("GET", "/2015-03-31/functions/{name}", get_function)
    router.add("GET", "/2015-03-31/functions/{name}/configuration", get_configuration)
    router.add("GET", "/2016-08-19/account-settings", account_settings)


def _max_items(value: str | None) -> int:
    if value is None:
        return MAX_ITEMS
    if not value.isdigit() or not 1 <= int(value) <= 10000:
        raise HttpApiError(
            400,
            "InvalidParameterValueException",
            f"1 validation error detected: Value '{value}' at 'maxItems' failed to satisfy constraint: "
            "Member must have value between 1 and 10000",
        )
    return int(value)


def _json(document: object) -> Response:
    return Response(200, orjson.dumps(document, default=str), content_type="application/json")

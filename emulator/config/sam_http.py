"""A SAM function's HTTP events (``Events`` of ``Type: Api`` and ``Type: HttpApi``) and its ``FunctionUrlConfig``,
as front door routes and a function URL. Only the fields the front door uses are evaluated, so an event of another
type, or a ``RestApiId: !Ref MyApi``, never stops a template from loading."""

from __future__ import annotations

from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass
from typing import Any

from ..errors import ConfigError
from .cloudformation import _Unresolvable
from .http_routes import DEFAULT_ROUTE, FunctionUrl, Route, cors_from_mapping

HTTP_EVENT_TYPES = ("Api", "HttpApi")
_FIELDS = ("Path", "Method", "PayloadFormatVersion")
SERVERLESS_API = "AWS::Serverless::Api"
SERVERLESS_HTTP_API = "AWS::Serverless::HttpApi"
_API_REF = {"Api": "RestApiId", "HttpApi": "ApiId"}  # the event property that names the API resource

Fail = Callable[[str, str], ConfigError]
Evaluate = Callable[
    [str, Any], Any
]  # (where, value) -> the value evaluated; ConfigError naming ``where`` if it can't be


@dataclass(frozen=True)
class RestApi:
    """What a REST API's resource (or Globals.Api, for SAM's implicit API) says about its routes."""

    stage: str = "Prod"
    binary_media_types: tuple[str, ...] = ()


def rest_apis(template: Mapping[str, Any], evaluate: Callable[[Any], Any]) -> dict[str | None, RestApi]:
    """Each ``AWS::Serverless::Api`` by logical id, and SAM's implicit API under None; Globals.Api applies to all.
    A value that cannot be evaluated locally leaves SAM's default."""

    def settings(props: Mapping[str, Any], default: RestApi) -> RestApi:
        stage, types = default.stage, default.binary_media_types
        try:
            if "StageName" in props:
                stage = str(evaluate(props["StageName"]))
            if "BinaryMediaTypes" in props:
                types = (*types, *(str(evaluate(t)) for t in evaluate(props["BinaryMediaTypes"]) or ()))
        except _Unresolvable:  # a stage or type that needs a deployed stack: SAM's default stands
            pass
        return RestApi(stage, types)

    globals_api = (template.get("Globals") or {}).get("Api") or {}
    implicit = settings(globals_api if isinstance(globals_api, dict) else {}, RestApi())
    apis: dict[str | None, RestApi] = {None: implicit}
    for logical_id, resource in (template.get("Resources") or {}).items():
        if isinstance(resource, dict) and resource.get("Type") == SERVERLESS_API:
            props = resource.get("Properties") or {}
            apis[logical_id] = settings(props if isinstance(props, dict) else {}, implicit)
    return apis


def apis_with_routes(resources: Mapping[str, Any], functions: Collection[str]) -> set[str]:
    """The ``AWS::Serverless::Api`` and ``AWS::Serverless::HttpApi`` resources that an ``Api`` or ``HttpApi`` event
    of one of ``functions`` (served functions' logical ids) names (``RestApiId``, ``ApiId``): the front door serves
    their routes. An API that none names (its routes only in its DefinitionBody, say) has none served."""
    named: set[str] = set()
    for logical_id in functions:
        resource = resources.get(logical_id)
        props = resource.get("Properties") if isinstance(resource, dict) else None
        events = props.get("Events") if isinstance(props, dict) else None
        if not isinstance(events, dict):
            continue
        for event in events.values():
            if not isinstance(event, dict) or event.get("Type") not in HTTP_EVENT_TYPES:
                continue
            event_props = event.get("Properties")
            ref = event_props.get(_API_REF[event["Type"]]) if isinstance(event_props, dict) else None
            if isinstance(ref, dict) and isinstance(ref.get("Ref"), str):
                named.add(ref["Ref"])
    kinds = (SERVERLESS_API, SERVERLESS_HTTP_API)
    return {name for name in named if isinstance(resources.get(name), dict) and resources[name].get("Type") in kinds}


def routes_from_events(
    events: Any, evaluate: Evaluate, fail: Fail, apis: Mapping[str | None, RestApi]
) -> tuple[Route, ...]:
    """The routes of the ``Api`` and ``HttpApi`` events; other event types are someone else's."""
    if not isinstance(events, dict):
        return ()
    routes: list[Route] = []
    for name, event in events.items():
        if not isinstance(event, dict) or event.get("Type") not in HTTP_EVENT_TYPES:
            continue
        where = f"Events.{name}.Properties"
        props = event.get("Properties") or {}
        if not isinstance(props, dict):
            raise fail(where, "expected a mapping")
        # Only the fields used are evaluated (each error names its field).
        values = {key: str(evaluate(f"{where}.{key}", props[key])) for key in _FIELDS if key in props}
        try:
            if event["Type"] == "Api":
                if "Path" not in values or "Method" not in values:
                    raise fail(where, "an Api event needs Path and Method")
                api_ref = props.get("RestApiId")
                api = apis.get(api_ref.get("Ref") if isinstance(api_ref, dict) else None, apis[None])
                route = Route(
                    kind="rest",
                    method=values["Method"],
                    path=values["Path"],
                    stage=api.stage,
                    binary_media_types=api.binary_media_types,
                )
            else:
                route = Route(
                    kind="http",
                    method=values.get("Method", "ANY"),
                    path=values.get("Path", DEFAULT_ROUTE),
                    payload_version=values.get("PayloadFormatVersion", "2.0"),
                )
        except ConfigError as exc:
            if exc.message.startswith("route"):  # the route's own checks: name the event
                raise fail(f"Events.{name}", exc.message) from None
            raise
        routes.append(route)
    return tuple(routes)


def function_url(config: Any, fail: Fail) -> FunctionUrl | None:
    """``FunctionUrlConfig``: ``AuthType``, ``InvokeMode``, ``Cors``."""
    if config is None:
        return None
    if not isinstance(config, Mapping):
        raise fail("FunctionUrlConfig", "expected a mapping")
    cors = config.get("Cors")
    if cors is not None and not isinstance(cors, Mapping):
        raise fail("FunctionUrlConfig.Cors", "expected a mapping")
    try:
        return FunctionUrl(
            auth_type=str(config.get("AuthType", "NONE")).upper(),
            invoke_mode=str(config.get("InvokeMode", "BUFFERED")).upper(),
            cors=cors_from_mapping(cors) if cors is not None else None,
        )
    except ConfigError as exc:
        raise fail("FunctionUrlConfig", exc.message) from None

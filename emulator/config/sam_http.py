"""A SAM function's HTTP events (``Events`` of ``Type: Api`` and ``Type: HttpApi``) and its ``FunctionUrlConfig``,
as front door routes and a function URL."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from ..errors import ConfigError
from .http_routes import DEFAULT_ROUTE, FunctionUrl, Route, cors_from_mapping

HTTP_EVENT_TYPES = ("Api", "HttpApi")

Fail = Callable[[str, str], ConfigError]


def routes_from_events(events: Any, fail: Fail) -> tuple[Route, ...]:
    """The routes of the ``Api`` and ``HttpApi`` events; other event types are someone else's."""
    if not isinstance(events, dict):
        return ()
    routes: list[Route] = []
    for name, event in events.items():
        if not isinstance(event, dict) or event.get("Type") not in HTTP_EVENT_TYPES:
            continue
        props = event.get("Properties") or {}
        if not isinstance(props, dict):
            raise fail(f"Events.{name}.Properties", "expected a mapping")
        try:
            if event["Type"] == "Api":
                if "Path" not in props or "Method" not in props:
                    raise fail(f"Events.{name}.Properties", "an Api event needs Path and Method")
                routes.append(Route(kind="rest", method=str(props["Method"]), path=str(props["Path"])))
            else:
                path = str(props.get("Path", DEFAULT_ROUTE))
                method = str(props.get("Method", "ANY"))
                version = str(props.get("PayloadFormatVersion", "2.0"))
                routes.append(Route(kind="http", method=method, path=path, payload_version=version))
        except ConfigError as exc:
            raise fail(f"Events.{name}", exc.message) from None
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

"""Which function and route an HTTP request reaches: API Gateway's route selection (static paths before
parameters before greedy ``{proxy+}``, a method before ``ANY``, ``$default`` last) and function URL hosts."""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from urllib.parse import unquote

from ...config.http_routes import DEFAULT_ROUTE, Route
from ...errors import ConfigError

URL_HOST_SUFFIX = ".lambda-url.localhost"  # clients resolve *.localhost to loopback


@dataclass(frozen=True)
class Match:
    """A request's route: the function, the route, and the path parameters (decoded)."""

    function: str
    route: Route
    path_parameters: dict[str, str]


@dataclass(frozen=True)
class _Entry:
    function: str
    route: Route
    pattern: re.Pattern[str] | None  # None: the $default route
    rank: tuple[int, int, int]  # lower wins: greedy?, parameters, -(static length)


def _compile(path: str) -> tuple[re.Pattern[str], tuple[int, int, int]]:
    parts: list[str] = []
    params = greedy = 0
    static = 0
    for segment in path.strip("/").split("/"):
        if segment.startswith("{") and segment.endswith("+}"):
            greedy = 1
            parts.append(f"(?P<{_group(segment[1:-2])}>.+)")
        elif segment.startswith("{"):
            params += 1
            parts.append(f"(?P<{_group(segment[1:-1])}>[^/]+)")
        else:
            static += len(segment)
            parts.append(re.escape(segment))
    return re.compile("^/" + "/".join(parts) + "/?$"), (greedy, params, -static)


def _group(name: str) -> str:
    """A parameter name as a regex group name (API Gateway allows '.' and '-', which groups do not)."""
    return "p_" + name.encode().hex()


class RouteTable:
    """Every function's API routes, matched as API Gateway selects them."""

    def __init__(self, routes: Iterable[tuple[str, Route]]):
        self._entries: list[_Entry] = []
        seen: dict[tuple[str, str, str], str] = {}
        for function, route in routes:
            key = (route.kind, route.method, route.path)
            if key in seen:
                raise ConfigError(
                    f"route {route.method} {route.path} ({route.kind}) is declared by both {seen[key]} and {function}"
                )
            seen[key] = function
            if route.path == DEFAULT_ROUTE:
                self._entries.append(_Entry(function, route, None, (9, 0, 0)))
            else:
                pattern, rank = _compile(route.path)
                self._entries.append(_Entry(function, route, pattern, rank))
        # A specific method before ANY, then the most specific path.
        self._entries.sort(key=lambda e: (e.rank, e.route.method == "ANY"))

    @property
    def has_http_api(self) -> bool:
        return any(entry.route.kind == "http" for entry in self._entries)

    @property
    def empty(self) -> bool:
        return not self._entries

    def match(self, method: str, path: str) -> Match | None:
        for entry in self._entries:
            if entry.route.method not in ("ANY", method):
                continue
            if entry.pattern is None:
                return Match(entry.function, entry.route, {})
            found = entry.pattern.match(path)
            if found is not None:
                params = {bytes.fromhex(name[2:]).decode(): unquote(value) for name, value in found.groupdict().items()}
                return Match(entry.function, entry.route, params)
        return None

    def routes_of(self, function: str) -> list[Route]:
        return [entry.route for entry in self._entries if entry.function == function]


def url_function(host: str) -> str | None:
    """The function a function URL host names (``orders.lambda-url.localhost`` → ``orders``), or None."""
    if host.endswith(URL_HOST_SUFFIX):
        name = host[: -len(URL_HOST_SUFFIX)]
        return name or None
    return None

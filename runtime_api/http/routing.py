"""Routing: a method and a path to a handler, and the errors of routing rendered in an API's own shape."""

from __future__ import annotations

import re
from collections.abc import Callable
from urllib.parse import unquote

from .message import Handler, Request, Response, StreamingResponse


class NotFound(Exception):
    pass


class MethodNotAllowed(Exception):
    def __init__(self, allowed: list[str]):
        super().__init__(", ".join(allowed))
        self.allowed = allowed


class Router:
    """Routes by method and path; ``{name}`` in a template matches one path segment, passed on decoded."""

    def __init__(self) -> None:
        self._static: dict[str, dict[str, Handler]] = {}
        self._patterns: list[tuple[re.Pattern[str], dict[str, Handler]]] = []
        self._templates: dict[str, dict[str, Handler]] = {}

    def add(self, method: str, template: str, handler: Handler) -> None:
        methods = self._templates.get(template)
        if methods is None:
            methods = self._templates[template] = {}
            if "{" in template:
                regex = "^" + "".join(
                    f"(?P<{part[1:-1]}>[^/]+)" if part.startswith("{") else re.escape(part)
                    for part in _split_template(template)
                ) + "$"
                self._patterns.append((re.compile(regex), methods))
            else:
                self._static[template] = methods
        methods[method] = handler

    def routes(self) -> list[tuple[str, str]]:
        """Every (method, template) served."""
        return [(method, template) for template, methods in self._templates.items() for method in methods]

    def resolve(self, request: Request) -> Handler:
        methods = self._static.get(request.path)
        if methods is None:
            for pattern, candidates in self._patterns:
                match = pattern.match(request.path)
                if match is not None:
                    request.params = {name: unquote(value) for name, value in match.groupdict().items()}
                    methods = candidates
                    break
            else:
                raise NotFound(request.path)
        handler = methods.get(request.method)
        if handler is None:
            raise MethodNotAllowed(sorted(methods))
        return handler


def _split_template(template: str) -> list[str]:
    parts: list[str] = []
    rest = template
    while "{" in rest:
        before, _, after = rest.partition("{")
        name, _, rest = after.partition("}")
        parts.extend((before, "{" + name + "}"))
    parts.append(rest)
    return [part for part in parts if part]


def route_errors(router: Router, handler_errors: Callable[[Request, Exception], Response | None]) -> Handler:
    """A dispatcher: the router's handler, with ``NotFound``/``MethodNotAllowed`` and the API's own exceptions
    rendered by ``handler_errors`` (which returns None for an exception it does not know, so it propagates)."""

    async def dispatch(request: Request) -> Response | StreamingResponse:
        try:
            return await router.resolve(request)(request)
        except Exception as exc:
            rendered = handler_errors(request, exc)
            if rendered is None:
                raise
            return rendered

    return dispatch

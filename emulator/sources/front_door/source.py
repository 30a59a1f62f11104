"""The front door's engine side (``runtime_api.FrontDoorBackend``): a request is routed to a function (an API route,
or a function URL by its host), becomes the service's event and an ``Invocation`` on the function's pool, and the
outcome leaves as the service answers it: the mapped response, or 502/504/500/429/403/404/413.

What the services answer when there is no function response, as implemented here:
- REST API: function error or malformed response 502 ``Internal server error``; integration timeout (29 s) 504
  ``Endpoint request timed out``; Lambda throttling 500 ``Internal server error`` (API Gateway does not pass the
  429 on); no route 403 ``Missing Authentication Token``.
- HTTP API: function error or malformed response 500 ``Internal Server Error``; integration timeout (30 s) 503
  ``Service Unavailable``; throttling 500; no route 404 ``Not Found``.
- Function URL: function error 502 ``Internal Server Error``; throttling 429 ``Rate Exceeded.``; ``AWS_IAM`` without
  a SigV4 ``Authorization`` header 403 ``Forbidden`` (the signature itself is not checked).
- Any: an event over Lambda's 6 MB request limit 413.

A function's own timeout is a function error (Sandbox.Timedout): 502 through a REST API, as on AWS. The integration
timeouts are ``integration_timeout_s`` (REST, 29) and ``http_integration_timeout_s`` (HTTP API, 30), settable.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Mapping
from typing import Any

import orjson

from runtime_api import MAX_SYNC_PAYLOAD_BYTES
from runtime_api.front_door import HttpAnswer, HttpRequest

from ...config.http_routes import Route
from ...config.settings import FunctionConfig
from ...engine.invocation import Invocation, Outcome, new_request_id
from ...engine.pool import FunctionPool, TooManyRequests
from ...engine.timeline import Timeline, record_outcome
from ..events.apigateway import rest_event
from ..events.function_url import function_url_event
from ..events.http_api import http_api_event
from ..events.http_request import is_text
from . import cors, responses
from .routing import Match, RouteTable, url_function

REST_INTEGRATION_TIMEOUT_S = 29.0
HTTP_INTEGRATION_TIMEOUT_S = 30.0
# Why an integration has no function response.
TOO_LARGE, THROTTLED, TIMED_OUT = "too large", "throttled", "timed out"


class FrontDoorSource:
    def __init__(
        self,
        functions: Mapping[str, FunctionPool],
        timeline: Timeline,
        *,
        integration_timeout_s: float = REST_INTEGRATION_TIMEOUT_S,
        http_integration_timeout_s: float = HTTP_INTEGRATION_TIMEOUT_S,
    ):
        self._functions = functions  # the emulator's own table: functions added later are routed too
        self._timeline = timeline
        self.integration_timeout_s = integration_timeout_s
        self.http_integration_timeout_s = http_integration_timeout_s
        self._table: RouteTable | None = None
        self._table_of: tuple[int, ...] = ()

    # --------------------------------------------------------------------------------------------- routes
    @property
    def table(self) -> RouteTable:
        """The route table, rebuilt when the functions served change."""
        key = tuple(id(pool.config) for pool in self._functions.values())
        if self._table is None or key != self._table_of:
            self._table = RouteTable(
                (name, route) for name, pool in self._functions.items() for route in pool.config.routes
            )
            self._table_of = key
        return self._table

    def check(self, config: FunctionConfig) -> None:
        """``ConfigError`` when a function's routes clash with those already served."""
        RouteTable(
            [(name, route) for name, pool in self._functions.items() for route in pool.config.routes]
            + [(config.name, route) for route in config.routes]
        )

    def describe(self, api_url: str | None) -> list[dict[str, Any]]:
        """Each function with its API routes and its function URL (``GET /_lambda-freeze/functions``)."""
        table = self.table
        described = []
        for name, pool in self._functions.items():
            url = pool.config.url
            described.append(
                {
                    "function": name,
                    "routes": [_describe_route(route) for route in table.routes_of(name)],
                    "url": _url_of(name, api_url) if url is not None and api_url is not None else None,
                    "url_config": None if url is None else {"auth_type": url.auth_type, "invoke_mode": url.invoke_mode},
                }
            )
        return described

    # ---------------------------------------------------------------------------------- runtime_api backend
    def too_large(self, host: str) -> HttpAnswer:
        return responses.message(413, "Request Entity Too Large")

    async def handle(self, request: HttpRequest) -> HttpAnswer:
        name = url_function(request.host)
        if name is not None:
            return await self._function_url(name, request)
        table = self.table
        match = table.match(request.method, request.path)
        if match is None:
            if table.has_http_api:
                return responses.message(404, "Not Found")
            return responses.message(403, "Missing Authentication Token")
        if match.route.kind == "rest":
            return await self._rest(match, request)
        return await self._http_api(match, request)

    async def _rest(self, match: Match, request: HttpRequest) -> HttpAnswer:
        pool = self._functions[match.function]
        request_id = new_request_id()
        event = rest_event(
            request,
            resource=match.route.path,
            path_parameters=match.path_parameters,
            stage=match.route.stage,
            request_id=request_id,
            account_id=pool.config.account_id,
            binary_media_types=match.route.binary_media_types,
        )
        ids = {"x-amzn-RequestId": request_id}
        outcome = await self._invoke(pool, event, self.integration_timeout_s)
        if outcome == TIMED_OUT:
            return responses.message(504, "Endpoint request timed out", headers=ids)
        if outcome == THROTTLED:
            return responses.message(500, "Internal server error", headers=ids)  # API Gateway does not pass 429 on
        if outcome == TOO_LARGE:
            return responses.message(413, "Request Entity Too Large", headers=ids)
        assert isinstance(outcome, Outcome)
        return _mapped(outcome, responses.v1_answer, 502, "Internal server error", ids)

    async def _http_api(self, match: Match, request: HttpRequest) -> HttpAnswer:
        pool = self._functions[match.function]
        request_id = new_request_id()
        route = match.route
        if route.payload_version == "1.0":
            resource = "$default" if route.path == "$default" else route.path
            event = rest_event(
                request,
                resource=resource,
                path_parameters=match.path_parameters,
                stage=route.stage,
                request_id=request_id,
                account_id=pool.config.account_id,
                binary_media_types=("*/*",) if not _text_body(request) else (),
            )
            event["version"] = "1.0"
            mapping = responses.v1_answer
        else:
            event = http_api_event(
                request,
                route_key=route.route_key,
                path_parameters=match.path_parameters,
                stage=route.stage,
                request_id=request_id,
                account_id=pool.config.account_id,
            )
            mapping = responses.v2_answer
        ids = {"Apigw-Requestid": request_id}
        outcome = await self._invoke(pool, event, self.http_integration_timeout_s)
        if outcome == TIMED_OUT:
            return responses.message(503, "Service Unavailable", headers=ids)
        if outcome == THROTTLED:
            return responses.message(500, "Internal Server Error", headers=ids)
        if outcome == TOO_LARGE:
            return responses.message(413, "Request Entity Too Large", headers=ids)
        assert isinstance(outcome, Outcome)
        return _mapped(outcome, mapping, 500, "Internal Server Error", ids)

    async def _function_url(self, name: str, request: HttpRequest) -> HttpAnswer:
        pool = next((p for n, p in self._functions.items() if n.lower() == name and p.config.url is not None), None)
        if pool is None or pool.config.url is None:
            return responses.message(403, "Forbidden", key="Message")
        url = pool.config.url
        if url.cors is not None and cors.is_preflight(request.method, request.headers):
            return cors.preflight(url.cors, request.headers)
        caller = None
        if url.auth_type == "AWS_IAM":
            caller = _sigv4_access_key(request.headers.get("authorization", ""))
            if caller is None:
                return responses.message(403, "Forbidden", key="Message")
        # The URL's request id is the invocation's: the event is built once the invocation has one.
        invocation = Invocation(b"", pool.config.arn, streaming_invoke=url.invoke_mode == "RESPONSE_STREAM")
        event = function_url_event(
            request, function_name=pool.config.name, request_id=invocation.request_id, iam_caller=caller
        )
        invocation.payload = orjson.dumps(event)
        if len(invocation.payload) > MAX_SYNC_PAYLOAD_BYTES:
            return responses.message(413, "Request Entity Too Large", key="Message")
        answer = await self._url_answer(pool, invocation)
        answer.headers.append(("x-amzn-RequestId", invocation.request_id))
        if url.cors is not None:
            answer = cors.apply(url.cors, request.headers, answer)
        return answer

    async def _url_answer(self, pool: FunctionPool, invocation: Invocation) -> HttpAnswer:
        try:
            pool.place(invocation)
        except TooManyRequests:
            return responses.message(429, "Rate Exceeded.", key="Message")
        outcome = await invocation.result
        self._record(pool, invocation, outcome)
        if outcome.stream is not None:
            return await _streamed(outcome)
        return _mapped(outcome, responses.v2_answer, 502, "Internal Server Error", {})

    # ------------------------------------------------------------------------------------------- the pool
    async def _invoke(self, pool: FunctionPool, event: dict[str, Any], timeout_s: float) -> Outcome | str:
        """The function's outcome, or why there is none: ``TOO_LARGE``, ``THROTTLED``, ``TIMED_OUT``."""
        payload = orjson.dumps(event)
        if len(payload) > MAX_SYNC_PAYLOAD_BYTES:
            return TOO_LARGE
        invocation = Invocation(payload, pool.config.arn)
        try:
            pool.place(invocation)
        except TooManyRequests:
            return THROTTLED
        result = invocation.result
        if not result.done() and not await _settled_within(result, timeout_s):
            return TIMED_OUT
        outcome = result.result()
        self._record(pool, invocation, outcome)
        return outcome

    def _record(self, pool: FunctionPool, invocation: Invocation, outcome: Outcome) -> None:
        record_outcome(self._timeline, invocation, outcome, pool.config.name, source="front_door")


async def _settled_within(result: asyncio.Future[Outcome], timeout_s: float) -> bool:
    """Whether ``result`` is settled within ``timeout_s``. It is never cancelled, neither when the time is up nor when
    the request's own task is (its client went away): the invocation runs on when the integration gives up, as
    Lambda does not cancel it either. What ``wait_for(shield(...))`` does, with one future and one loop turn."""
    loop = asyncio.get_running_loop()
    waiter = loop.create_future()

    def release(_: object = None) -> None:
        if not waiter.done():
            waiter.set_result(None)

    timer = loop.call_later(timeout_s, release)
    result.add_done_callback(release)
    try:
        await waiter
    finally:
        timer.cancel()
        result.remove_done_callback(release)
    return result.done()


def _mapped(outcome: Outcome, mapping: Any, status: int, text: str, ids: Mapping[str, str]) -> HttpAnswer:
    if outcome.ok:
        try:
            answer: HttpAnswer = mapping(outcome.payload)
        except responses.Malformed:
            return responses.message(status, text, headers=ids)
        answer.headers.extend(ids.items())
        return answer
    return responses.message(status, text, headers=ids)


async def _streamed(outcome: Outcome) -> HttpAnswer:
    """A function URL's streamed answer: the head from the prelude (when the function wrote one), then each piece
    of the body as the function writes it."""
    stream = outcome.stream
    assert stream is not None
    chunks = stream.chunks()
    head = HttpAnswer(200, [("Content-Type", stream.content_type)])
    first = b""
    if stream.content_type == responses.STREAM_PRELUDE_TYPE:
        buffered = b""
        async for chunk in chunks:
            buffered += chunk
            if responses.PRELUDE_END in buffered:
                break
        prelude, _, first = buffered.partition(responses.PRELUDE_END)
        try:
            head = responses.prelude_answer(prelude)
        except responses.Malformed:
            stream.abandon()
            return responses.message(502, "Internal Server Error", key="Message")

    async def body() -> AsyncIterator[bytes]:
        try:
            if first:
                yield first
            async for chunk in chunks:
                yield chunk
        finally:
            if not stream.ended.done():
                stream.abandon()  # the client went away: what the function still writes is dropped

    head.stream = body()
    return head


def _text_body(request: HttpRequest) -> bool:
    return is_text(request.headers.get("content-type"), request.body)


def _sigv4_access_key(authorization: str) -> str | None:
    """The access key of a SigV4 ``Authorization`` header (its signature is not checked), or None."""
    scheme, _, rest = authorization.partition(" ")
    if scheme != "AWS4-HMAC-SHA256":
        return None
    for part in rest.split(","):
        name, _, value = part.strip().partition("=")
        if name == "Credential" and "/" in value:
            return value.split("/")[0]
    return None


def _describe_route(route: Route) -> dict[str, Any]:
    return {
        "kind": route.kind,
        "method": route.method,
        "path": route.path,
        "stage": route.stage,
        "payload_version": route.payload_version,
    }


def _url_of(name: str, api_url: str) -> str:
    port = api_url.rsplit(":", 1)[1]
    return f"http://{name.lower()}.lambda-url.localhost:{port}/"

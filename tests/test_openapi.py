"""The OpenAPI document of the Invoke and inspection APIs: valid, served, complete (black-box: every route the
server answers is in it, and nothing else is answered), and true (schemathesis against a live emulator)."""

from __future__ import annotations

import base64
import copy
import json
import re
from collections.abc import Iterator
from typing import Any

import pytest
import schemathesis
from fuzzing import SENT, ServeProcess, assert_aws_error, examples, http_call
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from schemathesis import GenerationMode

from runtime_api import openapi
from runtime_api.invoke import OPENAPI_PATH

pytestmark = pytest.mark.timeout(300)

# Every operation of the Invoke API server: kept here, apart from the server's code, so that a route added to the
# server and not to the document (or the other way round) fails a test.
ROUTES = {
    ("POST", "/2015-03-31/functions/{FunctionName}/invocations"),
    ("POST", "/2021-11-15/functions/{FunctionName}/response-streaming-invocations"),
    ("GET", "/2015-03-31/functions"),
    ("GET", "/2015-03-31/functions/{FunctionName}"),
    ("GET", "/2015-03-31/functions/{FunctionName}/configuration"),
    ("GET", "/2016-08-19/account-settings"),
    ("GET", "/_lambda-freeze/environments"),
    ("POST", "/_lambda-freeze/environments/{EnvironmentId}/advance"),
    ("GET", "/_lambda-freeze/async"),
    ("GET", "/_lambda-freeze/functions"),
    ("GET", "/_lambda-freeze/openapi.json"),
    ("POST", "/2015-03-31/event-source-mappings/"),
    ("GET", "/2015-03-31/event-source-mappings/"),
    ("POST", "/2015-03-31/event-source-mappings"),
    ("GET", "/2015-03-31/event-source-mappings"),
    ("GET", "/2015-03-31/event-source-mappings/{UUID}"),
    ("PUT", "/2015-03-31/event-source-mappings/{UUID}"),
    ("DELETE", "/2015-03-31/event-source-mappings/{UUID}"),
    ("GET", "/_lambda-freeze/event-source-mappings"),
    ("GET", "/_lambda-freeze/schedules"),
    ("POST", "/_lambda-freeze/schedules/{Name}/trigger"),
}
# Operations on a resource the served function does not have (a mapping, a schedule) or that need an AWS
# endpoint it is not given: the route exists, and answers in Lambda's terms.
NO_SUCH_RESOURCE = ("ResourceNotFoundException", "InvalidParameterValueException")
METHODS = ["GET", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"]  # HEAD goes with GET (RFC 9110)


@pytest.fixture(scope="module")
def served() -> Iterator[ServeProcess]:
    emulator = ServeProcess()
    try:
        yield emulator
    finally:
        emulator.stop()


def documented() -> set[tuple[str, str]]:
    return {(method.upper(), path) for path, item in openapi.document()["paths"].items() for method in item}


def test_the_document_is_valid_openapi():
    schema = schemathesis.openapi.from_dict(copy.deepcopy(openapi.document()))
    schema.validate()  # against the OpenAPI 3.0 meta-schema; raises with the first violation
    assert openapi.document()["openapi"].startswith("3.")


def test_the_server_publishes_the_document(served):
    status, headers, body = http_call(served.port, "GET", OPENAPI_PATH)
    assert status == 200 and headers.get_content_type() == "application/json"
    assert json.loads(body) == openapi.document()


def test_every_route_is_documented(served):
    assert documented() == ROUTES
    for method, template in sorted(ROUTES):
        path = template.replace("{FunctionName}", served.name).replace("{UUID}", "nope").replace("{Name}", "nope")
        path = path.replace("{EnvironmentId}", "nope")
        status, headers, body = http_call(served.port, method, path, b"{}" if method in ("POST", "PUT") else None)
        assert headers.get("x-amzn-ErrorType") != "UnknownOperationException", (method, path, status, body)
        assert status < 400 or headers.get("x-amzn-ErrorType") in NO_SUCH_RESOURCE, (method, path, status, body)
        for other in METHODS:
            if (other, template) not in ROUTES:
                status, headers, body = http_call(served.port, other, path, b"{}")
                assert status in (404, 405), (other, path, status, body)
                assert assert_aws_error(status, headers, body) == "UnknownOperationException"


def _matches_a_route(method: str, path: str) -> bool:
    for route_method, template in ROUTES:
        pattern = re.sub(r"\\\{\w+\\\}", "[^/]+", re.escape(template))
        if re.fullmatch(pattern, path) and method in (route_method, "HEAD" if route_method == "GET" else None):
            return True
    return False


SEGMENTS = st.sampled_from(
    ["2015-03-31", "2021-11-15", "_lambda-freeze", "functions", "fn", "invocations", "environments", "async"]
) | st.text(st.characters(min_codepoint=0x21, max_codepoint=0x7E, exclude_characters="/?#%"), min_size=1, max_size=12)


@settings(max_examples=examples(60), deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(method=st.sampled_from(METHODS), segments=st.lists(SEGMENTS, min_size=0, max_size=5))
def test_nothing_undocumented_is_answered(served, method, segments):
    """A path and method that match no documented operation name no operation: 404 or 405, in AWS's shape."""
    path = "/" + "/".join(segments)
    if _matches_a_route(method, path):
        return
    status, headers, body = http_call(served.port, method, path, b"{}", counter="invoke/http")
    assert status in (404, 405), (method, path, status, body)
    assert assert_aws_error(status, headers, body) == "UnknownOperationException"


# -------------------------------------------------------------------------------------------------- schemathesis
# Through schemathesis' Python API: its pytest loader (schemathesis.pytest.from_fixture) needs a pytest before 9.
@pytest.fixture(scope="module")
def live_schema(served: ServeProcess) -> Any:
    """The document as the live server publishes it; requests go to that server."""
    return schemathesis.openapi.from_url(served.url + OPENAPI_PATH)


def _client_context_as_json(case: Any) -> Any:
    """X-Amz-Client-Context is base64 *of JSON*, which an OpenAPI schema cannot say: a valid request carries
    base64 JSON there (the base64 string generated, with JSON around it)."""
    if case.headers and "X-Amz-Client-Context" in case.headers:
        custom = {"generated": case.headers["X-Amz-Client-Context"]}
        case.headers["X-Amz-Client-Context"] = base64.b64encode(json.dumps({"custom": custom}).encode()).decode()
    return case


@pytest.mark.parametrize(("method", "path"), sorted(ROUTES - {("GET", OPENAPI_PATH)}))
def test_the_server_does_what_its_document_says(live_schema, method, path):
    """Requests generated from the document, valid ones and (for operations with inputs) invalid ones: every
    answer is documented (status, headers, body schema, content type), no 5xx, invalid input refused."""
    operation = live_schema[path][method]
    strategy = operation.as_strategy(GenerationMode.POSITIVE).map(_client_context_as_json)
    if operation.path_parameters or operation.headers or operation.query or operation.body:
        strategy = strategy | operation.as_strategy(GenerationMode.NEGATIVE)

    @settings(max_examples=examples(25), deadline=None, suppress_health_check=list(HealthCheck))
    @given(case=strategy)
    def conforms(case: Any) -> None:
        SENT["schemathesis"] += 1
        case.call_and_validate()

    conforms()

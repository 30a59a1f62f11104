"""The front door's parts alone, without sockets or processes: route selection, the event builders, the 1.0 and
2.0 response mappings, CORS, and the route and function URL settings."""

from __future__ import annotations

import base64
import json

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from emulator.config.http_routes import Cors, FunctionUrl, Route, routes_from_toml, url_from_toml
from emulator.errors import ConfigError
from emulator.sources.events.apigateway import rest_event
from emulator.sources.events.function_url import function_url_event
from emulator.sources.events.http_api import http_api_event
from emulator.sources.front_door import cors, responses
from emulator.sources.front_door.routing import RouteTable, url_function
from runtime_api.front_door import HeaderLines, HttpRequest


def request(method: str = "GET", path: str = "/", query: str = "", body: bytes = b"", **headers: str) -> HttpRequest:
    return HttpRequest(method, path, query, {k.replace("_", "-"): v for k, v in headers.items()}, body, "h", "10.0.0.1")


# ------------------------------------------------------------------------------------------------ routing
def test_static_before_parameter_before_greedy_and_method_before_any() -> None:
    table = RouteTable(
        [
            ("greedy", Route("http", "ANY", "/{proxy+}")),
            ("param", Route("http", "GET", "/orders/{id}")),
            ("static", Route("http", "GET", "/orders/new")),
            ("any", Route("http", "ANY", "/orders/{id}")),
            ("default", Route("http", "ANY", "$default")),
        ]
    )
    found = table.match("GET", "/orders/new")
    assert found is not None and found.function == "static"
    found = table.match("GET", "/orders/7")
    assert found is not None and (found.function, found.path_parameters) == ("param", {"id": "7"})
    found = table.match("DELETE", "/orders/7")
    assert found is not None and found.function == "any"
    found = table.match("GET", "/a/b%20c")
    assert found is not None and (found.function, found.path_parameters) == ("greedy", {"proxy": "a/b c"})
    found = table.match("GET", "/")
    assert found is not None and found.function == "default"  # {proxy+} needs at least one segment


def test_a_route_declared_twice_is_refused() -> None:
    with pytest.raises(ConfigError, match="declared by both a and b"):
        RouteTable([("a", Route("rest", "GET", "/x")), ("b", Route("rest", "GET", "/x"))])


def test_function_url_hosts() -> None:
    assert url_function("orders.lambda-url.localhost") == "orders"
    assert url_function("127.0.0.1") is None and url_function(".lambda-url.localhost") is None


# -------------------------------------------------------------------------------------------------- events
def test_rest_event_binary_media_types_and_repeated_query_keys() -> None:
    event = rest_event(
        request("POST", "/img", "a=1&a=2", b"\x89PNG", content_type="image/png"),
        resource="/img",
        path_parameters={},
        stage="Prod",
        request_id="r",
        account_id="1",
        binary_media_types=("image/*",),
        epoch_ms=0,
    )
    assert event["isBase64Encoded"] is True and base64.b64decode(event["body"]) == b"\x89PNG"
    assert event["queryStringParameters"] == {"a": "2"}
    assert event["multiValueQueryStringParameters"] == {"a": ["1", "2"]}
    assert event["pathParameters"] is None
    assert event["requestContext"]["requestTime"] == "01/Jan/1970:00:00:00 +0000"
    assert event["requestContext"]["identity"]["sourceIp"] == "10.0.0.1"


def test_http_api_event_leaves_out_what_has_no_value() -> None:
    event = http_api_event(
        request(), route_key="$default", path_parameters={}, stage="$default", request_id="r", account_id="1"
    )
    assert set(event) == {
        "version",
        "routeKey",
        "rawPath",
        "rawQueryString",
        "headers",
        "requestContext",
        "isBase64Encoded",
    }


def test_function_url_event_iam_authorizer() -> None:
    event = function_url_event(request(), function_name="Fn", request_id="r", iam_caller="AKID")
    assert event["requestContext"]["authorizer"]["iam"]["accessKey"] == "AKID"
    assert event["requestContext"]["apiId"] == "fn"


# ----------------------------------------------------------------------------------------------- responses
def test_v1_requires_status_code_and_merges_multi_value_headers() -> None:
    with pytest.raises(responses.Malformed):
        responses.v1_answer(b'{"body": "x"}')
    with pytest.raises(responses.Malformed):
        responses.v1_answer(b'"text"')
    with pytest.raises(responses.Malformed):
        responses.v1_answer(b'{"statusCode": 200, "body": "%%", "isBase64Encoded": true}')
    answer = responses.v1_answer(
        json.dumps(
            {
                "statusCode": "201",
                "headers": {"A": "1", "B": "x", "Content-Length": "999"},
                "multiValueHeaders": {"B": ["y", "z"]},
                "body": "ok",
            }
        ).encode()
    )
    assert answer.status == 201 and answer.body == b"ok"
    assert answer.headers == [("Content-Type", "application/json"), ("A", "1"), ("B", "y"), ("B", "z")]


def test_v2_inferred_and_structured() -> None:
    assert responses.v2_answer(b"[1, 2]").body == b"[1, 2]"
    assert responses.v2_answer(b'{"statusCode": 204}').status == 204
    answer = responses.v2_answer(b'{"statusCode": 200, "cookies": ["a=1"], "body": "aGk=", "isBase64Encoded": true}')
    assert answer.body == b"hi" and ("Set-Cookie", "a=1") in answer.headers


def test_answers_are_read_as_json_reads_them() -> None:
    """The answer is read with orjson only where that reading is json's: what orjson reads otherwise (an integer
    beyond 64 bits as a float) or refuses (NaN, a lone surrogate, a byte order mark, UTF-16) is read by json."""
    big = 2**70
    answer = responses.v1_answer(b'{"statusCode": 200, "headers": {"X-Big": %d}, "body": {"n": %d}}' % (big, big))
    assert ("X-Big", str(big)) in answer.headers and answer.body == b'{"n": %d}' % big
    assert responses.v1_answer(b'{"statusCode": 200, "body": [NaN, 1e400]}').body == b"[NaN, Infinity]"
    assert responses.v1_answer(b'{"statusCode": 200, "body": 0.30000000000000004}').body == b"0.30000000000000004"
    assert responses.v2_answer('\ufeff{"statusCode": 202}'.encode()).status == 202
    assert responses.v2_answer('{"statusCode": 203}'.encode("utf-16")).status == 203
    assert ("X", "\ud800") in responses.v2_answer(b'{"statusCode": 200, "headers": {"X": "\\ud800"}}').headers



def test_a_body_with_a_lone_surrogate_is_sent_with_the_replacement_character() -> None:
    """JSON may escape half of a surrogate pair alone; the body then carries U+FFFD there, as a decoder that keeps
    to UTF-8 reads it (Go's encoding/json does), where encoding it as it stands failed the request with a plain 500;
    a whole pair stays one character."""
    for answer in (responses.v1_answer, responses.v2_answer):
        assert answer(b'{"statusCode": 200, "body": "a\\ud800b"}').body == "a\ufffdb".encode()
        assert answer(b'{"statusCode": 200, "body": "\\ud83d\\ude00"}').body == "\U0001f600".encode()
    with pytest.raises(responses.Malformed):
        responses.v1_answer(b'{"statusCode": 200, "body": "\xff"}')  # not UTF-8


@settings(max_examples=500, deadline=None, suppress_health_check=list(HealthCheck))
@given(
    st.recursive(
        st.none() | st.booleans() | st.integers() | st.floats() | st.text(),
        lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=5), inner, max_size=4),
        max_leaves=12,
    ),
    st.booleans(),
)
def test_answer_reading_agrees_with_json(value: object, ascii_only: bool) -> None:
    raw = json.dumps(value, ensure_ascii=ascii_only).encode("utf-8", "surrogatepass")
    try:
        want = json.loads(raw)
    except ValueError:
        with pytest.raises(ValueError):
            responses._json(raw)
        return
    # repr tells apart what == does not: int from float, -0.0 from 0.0; NaN's repr is the same
    assert repr(responses._json(raw)) == repr(want)


def test_stream_prelude() -> None:
    head = responses.prelude_answer(b'{"statusCode": 418, "headers": {"X": "1"}, "cookies": ["c=1"]}')
    assert head.status == 418
    assert head.headers == [("Content-Type", "application/octet-stream"), ("X", "1"), ("Set-Cookie", "c=1")]


def test_header_lines_keep_repeated_names_in_order() -> None:
    lines = HeaderLines([("Set-Cookie", "a=1"), ("X", "1"), ("Set-Cookie", "b=2")])
    assert list(lines.items()) == [("Set-Cookie", "a=1"), ("X", "1"), ("Set-Cookie", "b=2")]
    assert lines["set-cookie"] == "b=2" and list(lines) == ["Set-Cookie", "X"]


# ---------------------------------------------------------------------------------------------------- CORS
def test_cors_preflight_and_answers() -> None:
    settings = Cors(allow_origins=("*",), allow_methods=("GET",), allow_headers=("x-a",), expose_headers=("x-b",))
    asked = {"origin": "https://o", "access-control-request-method": "GET", "access-control-request-headers": "X-A"}
    assert cors.is_preflight("OPTIONS", asked)
    headers = dict(cors.preflight(settings, asked).headers)
    assert headers["Access-Control-Allow-Origin"] == "*" and headers["Access-Control-Allow-Headers"] == "x-a"
    refused = cors.preflight(settings, {**asked, "access-control-request-method": "DELETE"})
    assert "Access-Control-Allow-Origin" not in dict(refused.headers)
    answer = cors.apply(
        settings,
        {"origin": "https://o"},
        responses.v2_answer(b'{"statusCode": 200, "headers": {"Access-Control-Allow-Origin": "x"}}'),
    )
    assert dict(answer.headers)["Access-Control-Allow-Origin"] == "*"  # the URL's settings, not the function's
    assert dict(answer.headers)["Access-Control-Expose-Headers"] == "x-b"


# -------------------------------------------------------------------------------------------------- config
def test_routes_and_url_from_a_config_file() -> None:
    routes = routes_from_toml(
        ["GET /a/{id}", "rest ANY /{proxy+}", "$default", {"kind": "http", "path": "/v1", "payload_version": "1.0"}],
        "f",
    )
    assert [(r.kind, r.method, r.path, r.stage, r.payload_version) for r in routes] == [
        ("http", "GET", "/a/{id}", "$default", "2.0"),
        ("rest", "ANY", "/{proxy+}", "Prod", "1.0"),
        ("http", "ANY", "$default", "$default", "2.0"),
        ("http", "ANY", "/v1", "$default", "1.0"),
    ]
    assert url_from_toml(True, "f") == FunctionUrl()
    url = url_from_toml({"invoke_mode": "response_stream", "cors": {"allow_origins": ["*"], "max_age": 5}}, "f")
    assert url.invoke_mode == "RESPONSE_STREAM" and url.cors == Cors(allow_origins=("*",), max_age_s=5)


@pytest.mark.parametrize(
    ("route", "problem"),
    [
        (("rest", "GET", "$default"), "only an HTTP API"),
        (("http", "GET", "orders"), "starts with '/'"),
        (("http", "GET", "/{proxy+}/x"), "greedy"),
        (("http", "FETCH", "/x"), "method"),
        (("rest", "GET", "/x", "", "2.0"), "REST APIs send 1.0"),
    ],
)
def test_bad_routes_are_refused(route: tuple[str, ...], problem: str) -> None:
    with pytest.raises(ConfigError, match=problem):
        Route(*route)


def test_events_from_header_lines_and_without_them() -> None:
    lines = [("host", "h"), ("x-dup", "a"), ("cookie", "a=1"), ("x-forwarded-for", "9.9.9.9"), ("x-dup", "b")]
    joined = {"host": "h", "x-dup": "a, b", "cookie": "a=1", "x-forwarded-for": "9.9.9.9"}
    seen = HttpRequest("GET", "/", "", joined, b"", "h", "10.0.0.1", header_lines=lines)
    v1 = rest_event(seen, resource="/", path_parameters={}, stage="Prod", request_id="r", account_id="1")
    assert v1["multiValueHeaders"] == {
        "host": ["h"],
        "x-dup": ["a", "b"],
        "cookie": ["a=1"],
        "x-forwarded-for": ["9.9.9.9, 10.0.0.1"],
    }
    assert v1["headers"]["x-dup"] == "b"
    v2 = function_url_event(seen, function_name="f", request_id="r")
    assert v2["headers"] == {"host": "h", "x-dup": "a,b", "x-forwarded-for": "9.9.9.9, 10.0.0.1"}
    assert v2["cookies"] == ["a=1"]
    # A request made up without its lines (a generated event): each joined header stands for one field.
    made_up = request(x_dup="a, b")
    assert rest_event(made_up, resource="/", path_parameters={}, stage="s", request_id="r", account_id="1")[
        "multiValueHeaders"
    ] == {"x-dup": ["a, b"], "x-forwarded-for": ["10.0.0.1"]}

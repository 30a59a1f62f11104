"""The HTTP front door with real clients (requests, curl, botocore's SigV4 signer) and a real Python runtime: the
REST API (1.0), HTTP API (2.0 and 1.0) and function URL events and response mappings, the services' error answers,
CORS, and the freeze between two requests."""

from __future__ import annotations

import json
import os
import subprocess
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import requests
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

from conftest import FUNCTIONS, Served, require
from emulator import FunctionConfig
from emulator.config.http_routes import Cors, FunctionUrl, Route
from emulator.engine import node_ric
from emulator.errors import ConfigError

pytestmark = pytest.mark.timeout(90)

ROUTES = (
    Route("rest", "GET", "/orders/{id}"),
    Route("rest", "ANY", "/rest/{proxy+}", binary_media_types=("image/png",)),
    Route("http", "ANY", "/v2/{proxy+}"),
    Route("http", "GET", "/v1/{proxy+}", payload_version="1.0"),
)
CORS = Cors(
    allow_origins=("https://app.example",), allow_methods=("GET", "POST"), allow_headers=("x-token",), max_age_s=60
)


def api(fn: Served) -> str:
    url = fn.emulator.emulator.api_url  # type: ignore[union-attr]
    assert url is not None
    return url


def url_host(fn: Served) -> dict[str, str]:
    """The Host header of the function's URL (``<name>.lambda-url.localhost``), for clients that cannot resolve it."""
    return {"Host": f"{fn.name}.lambda-url.localhost:{fn.emulator.emulator.api_port}"}  # type: ignore[union-attr]


@pytest.fixture
def web(serve: Callable[..., Served]) -> Served:
    return serve("python/http", name="web", routes=ROUTES, url=FunctionUrl(cors=CORS), server={"api_port": 0})


# ------------------------------------------------------------------------------------------- REST API, 1.0
def test_rest_event_has_path_parameters_repeated_query_keys_and_the_stage(web: Served) -> None:
    answer = requests.get(f"{api(web)}/orders/42?tag=a&tag=b&one=1", headers={"Cookie": "s=1"}, timeout=30)
    assert answer.status_code == 200
    event = answer.json()
    assert event["resource"] == "/orders/{id}"
    assert event["path"] == "/orders/42"
    assert event["httpMethod"] == "GET"
    assert event["pathParameters"] == {"id": "42"}
    assert event["queryStringParameters"] == {"tag": "b", "one": "1"}  # the last of a repeated key
    assert event["multiValueQueryStringParameters"] == {"tag": ["a", "b"], "one": ["1"]}
    assert event["headers"]["cookie"] == "s=1"
    assert event["multiValueHeaders"]["cookie"] == ["s=1"]
    assert event["stageVariables"] is None
    assert event["body"] is None and event["isBase64Encoded"] is False
    context = event["requestContext"]
    assert context["stage"] == "Prod" and context["path"] == "/Prod/orders/42"
    assert context["identity"]["sourceIp"] == "127.0.0.1"
    assert context["requestId"] == answer.headers["x-amzn-RequestId"]
    assert isinstance(context["requestTimeEpoch"], int)
    assert answer.headers["X-Request-Id"] != context["requestId"]  # Lambda's request id is not API Gateway's


def test_rest_greedy_path_any_method_and_binary_media_types(web: Served) -> None:
    png = bytes(range(256))
    answer = requests.post(
        f"{api(web)}/rest/deep/down/binary", data=png, headers={"Content-Type": "image/png"}, timeout=30
    )
    assert answer.status_code == 200
    assert answer.headers["Content-Type"] == "application/octet-stream"
    assert answer.content == png[::-1]  # the function got the bytes (base64) and its base64 answer was decoded
    event = requests.put(f"{api(web)}/rest/a/b?x=1", data="text body", timeout=30).json()
    assert event["pathParameters"] == {"proxy": "a/b"}
    assert event["resource"] == "/rest/{proxy+}"
    assert event["body"] == "text body" and event["isBase64Encoded"] is False


def test_rest_multi_value_headers_become_separate_lines(web: Served) -> None:
    answer = requests.get(f"{api(web)}/rest/multi", timeout=30)
    assert answer.status_code == 200
    assert answer.raw.headers.getlist("Set-Cookie") == ["a=1", "b=2"]
    assert answer.raw.headers.getlist("X-Multi") == ["x", "y"]
    assert answer.headers["X-Single"] == "one"
    assert answer.headers["Content-Type"] == "application/json"  # API Gateway's default
    assert answer.text == "multi"


def test_rest_errors_as_api_gateway_answers_them(web: Served) -> None:
    failed = requests.get(f"{api(web)}/rest/fail", timeout=30)
    assert (failed.status_code, failed.json()) == (502, {"message": "Internal server error"})
    malformed = requests.get(f"{api(web)}/rest/malformed", timeout=30)
    assert (malformed.status_code, malformed.json()) == (502, {"message": "Internal server error"})
    # Unknown path or method: 404 here since an HTTP API is served too (see test_rest_only_unknown_route).
    assert requests.delete(f"{api(web)}/orders/42", timeout=30).status_code == 404


def test_rest_only_unknown_route_is_missing_authentication_token(serve: Callable[..., Served]) -> None:
    fn = serve("python/http", routes=(Route("rest", "GET", "/orders/{id}"),), server={"api_port": 0})
    for method, path in (("GET", "/nothing"), ("POST", "/orders/1")):
        answer = requests.request(method, f"{api(fn)}{path}", timeout=30)
        assert (answer.status_code, answer.json()) == (403, {"message": "Missing Authentication Token"})


# ----------------------------------------------------------------------------------------- HTTP API, 2.0
def test_http_api_event_v2(web: Served) -> None:
    answer = requests.post(
        f"{api(web)}/v2/items/echo?k=1&k=2&e=",
        json={"n": 1},
        headers={"Cookie": "a=1; b=2", "User-Agent": "probe"},
        timeout=30,
    )
    assert answer.status_code == 200
    assert "Apigw-Requestid" in answer.headers
    event = answer.json()
    assert event["version"] == "2.0"
    assert event["routeKey"] == "ANY /v2/{proxy+}"
    assert event["rawPath"] == "/v2/items/echo"
    assert event["rawQueryString"] == "k=1&k=2&e="
    assert event["queryStringParameters"] == {"k": "1,2", "e": ""}
    assert event["cookies"] == ["a=1", "b=2"]
    assert "cookie" not in event["headers"]
    assert event["pathParameters"] == {"proxy": "items/echo"}
    assert json.loads(event["body"]) == {"n": 1} and event["isBase64Encoded"] is False
    context = event["requestContext"]
    assert context["http"] == {
        "method": "POST",
        "path": "/v2/items/echo",
        "protocol": "HTTP/1.1",
        "sourceIp": "127.0.0.1",
        "userAgent": "probe",
    }
    assert context["routeKey"] == "ANY /v2/{proxy+}" and context["stage"] == "$default"


def test_http_api_binary_body_is_base64(web: Served) -> None:
    data = b"\x89PNG\x00\xff"
    answer = requests.post(
        f"{api(web)}/v2/binary", data=data, headers={"Content-Type": "application/octet-stream"}, timeout=30
    )
    assert answer.content == data[::-1]


def test_http_api_inferred_responses_and_cookies(web: Served) -> None:
    inferred = requests.get(f"{api(web)}/v2/inferred", timeout=30)
    assert (inferred.status_code, inferred.headers["Content-Type"], inferred.json()) == (
        200,
        "application/json",
        {"hello": "world"},
    )
    text = requests.get(f"{api(web)}/v2/string", timeout=30)
    assert (text.status_code, text.json()) == (200, "plain")
    no_status = requests.get(f"{api(web)}/v2/malformed", timeout=30)  # 2.0 infers a response without statusCode
    assert (no_status.status_code, no_status.json()) == (200, {"no": "statusCode"})
    baked = requests.get(f"{api(web)}/v2/cookies", timeout=30)
    assert baked.status_code == 201
    assert baked.raw.headers.getlist("Set-Cookie") == ["a=1; Path=/", "b=2"]
    assert baked.text == "baked"


def test_http_api_errors(web: Served) -> None:
    failed = requests.get(f"{api(web)}/v2/fail", timeout=30)
    assert (failed.status_code, failed.json()) == (500, {"message": "Internal Server Error"})
    assert (requests.get(f"{api(web)}/nowhere", timeout=30).status_code) == 404


def test_http_api_payload_format_1_0(web: Served) -> None:
    event = requests.get(f"{api(web)}/v1/a/echo?q=1&q=2", timeout=30).json()
    assert event["version"] == "1.0"
    assert event["multiValueQueryStringParameters"] == {"q": ["1", "2"]}
    assert event["resource"] == "/v1/{proxy+}"
    # 1.0 rules: a response without statusCode is malformed.
    assert requests.get(f"{api(web)}/v1/malformed", timeout=30).status_code == 500


# ----------------------------------------------------------------------------------------- function URLs
def test_function_url_through_curl_by_its_host_name(web: Served) -> None:
    port = web.emulator.emulator.api_port  # type: ignore[union-attr]
    # curl resolves *.localhost to loopback itself, as browsers do.
    out = subprocess.run(
        ["curl", "-sS", "-i", "-b", "c=3", f"http://web.lambda-url.localhost:{port}/some/echo?x=1&x=2"],
        capture_output=True,
        timeout=60,
        check=True,
    ).stdout.decode()
    head, _, body = out.partition("\r\n\r\n")
    assert head.startswith("HTTP/1.1 200")
    event = json.loads(body)
    assert event["version"] == "2.0" and event["routeKey"] == "$default"
    assert event["rawPath"] == "/some/echo" and event["rawQueryString"] == "x=1&x=2"
    assert event["queryStringParameters"] == {"x": "1,2"}
    assert event["cookies"] == ["c=3"]
    context = event["requestContext"]
    assert context["domainName"] == "web.lambda-url.localhost"
    assert context["accountId"] == "anonymous" and context["apiId"] == "web"
    assert "pathParameters" not in event and "stageVariables" not in event
    assert f"x-amzn-RequestId: {context['requestId']}" in head


def test_function_url_unknown_host_is_forbidden(web: Served) -> None:
    headers = {"Host": "nobody.lambda-url.localhost"}
    answer = requests.get(api(web), headers=headers, timeout=30)
    assert (answer.status_code, answer.json()) == (403, {"Message": "Forbidden"})


def test_function_url_cors_preflight_is_answered_without_the_function(web: Served) -> None:
    before = sum(line.startswith("START") for line in web.lines)
    preflight = {
        **url_host(web),
        "Origin": "https://app.example",
        "Access-Control-Request-Method": "POST",
        "Access-Control-Request-Headers": "X-Token",
    }
    answer = requests.options(api(web) + "/", headers=preflight, timeout=30)
    assert answer.status_code == 200
    assert answer.headers["Access-Control-Allow-Origin"] == "https://app.example"
    assert answer.headers["Access-Control-Allow-Methods"] == "GET, POST"
    assert answer.headers["Access-Control-Allow-Headers"] == "x-token"
    assert answer.headers["Access-Control-Max-Age"] == "60"
    refused = requests.options(api(web) + "/", headers={**preflight, "Origin": "https://evil.example"}, timeout=30)
    assert "Access-Control-Allow-Origin" not in refused.headers
    assert sum(line.startswith("START") for line in web.lines) == before  # the function was not invoked
    real = requests.get(api(web) + "/echo", headers={**url_host(web), "Origin": "https://app.example"}, timeout=30)
    assert real.headers["Access-Control-Allow-Origin"] == "https://app.example"


def test_function_url_aws_iam_needs_a_sigv4_signature(serve: Callable[..., Served]) -> None:
    fn = serve("python/http", name="private", url=FunctionUrl(auth_type="AWS_IAM"), server={"api_port": 0})
    port = fn.emulator.emulator.api_port  # type: ignore[union-attr]
    target = f"http://127.0.0.1:{port}/echo"
    host = {"Host": f"private.lambda-url.localhost:{port}"}
    unsigned = requests.get(target, headers=host, timeout=30)
    assert (unsigned.status_code, unsigned.json()) == (403, {"Message": "Forbidden"})
    signed = AWSRequest(method="GET", url=target, headers=host)
    SigV4Auth(Credentials("AKIDLOCAL", "secret"), "lambda", "us-east-1").add_auth(signed)
    answer = requests.get(target, headers=dict(signed.headers.items()), timeout=30)
    assert answer.status_code == 200
    assert answer.json()["requestContext"]["authorizer"]["iam"]["accessKey"] == "AKIDLOCAL"


def test_function_url_function_error_is_502(web: Served) -> None:
    answer = requests.get(api(web) + "/fail", headers=url_host(web), timeout=30)
    assert answer.status_code == 502


# ------------------------------------------------------------------------------------ limits and failures
def test_oversize_body_is_413_and_the_connection_goes_on(web: Served) -> None:
    with requests.Session() as session:
        big = session.post(f"{api(web)}/v2/echo", data=b"x" * (6 * 1024 * 1024 + 10), timeout=60)
        assert big.status_code == 413
        after = session.get(f"{api(web)}/v2/inferred", timeout=30)
        assert after.status_code == 200 and after.json() == {"hello": "world"}
    # Just under the request limit, but over it once base64-encoded in the event: 413 too.
    binary = requests.post(
        f"{api(web)}/v2/echo",
        data=b"\xff" * (5 * 1024 * 1024),
        headers={"Content-Type": "application/octet-stream"},
        timeout=60,
    )
    assert binary.status_code == 413


def test_integration_timeout_is_504_and_a_function_timeout_502(serve: Callable[..., Served]) -> None:
    fn = serve("python/http", routes=(Route("rest", "GET", "/{proxy+}"),), timeout_s=2, server={"api_port": 0})
    fn.emulator.emulator.front_door.integration_timeout_s = 0.5  # type: ignore[union-attr]  # API Gateway's 29 s
    slow = requests.get(f"{api(fn)}/sleep?s=1.2", timeout=30)
    assert (slow.status_code, slow.json()) == (504, {"message": "Endpoint request timed out"})
    fn.emulator.emulator.front_door.integration_timeout_s = 29.0  # type: ignore[union-attr]
    timed_out = requests.get(f"{api(fn)}/sleep?s=5", timeout=30)  # the function's own 2 s timeout
    assert (timed_out.status_code, timed_out.json()) == (502, {"message": "Internal server error"})
    assert any("Task timed out after 2.00 seconds" in line for line in fn.lines)


def test_throttled_as_each_service_answers(serve: Callable[..., Served]) -> None:
    fn = serve(
        "python/http",
        routes=(Route("rest", "GET", "/{proxy+}"), Route("http", "GET", "/v2/{proxy+}")),
        url=FunctionUrl(),
        reserved_concurrency=1,
        timeout_s=10,
        server={"api_port": 0},
    )
    results: list[int] = []
    busy = threading.Thread(target=lambda: results.append(requests.get(f"{api(fn)}/sleep?s=3", timeout=30).status_code))
    busy.start()
    try:
        fn.wait_envs(lambda envs: any(env["state"] == "invoking" for env in envs))
        rest = requests.get(f"{api(fn)}/count", timeout=30)
        assert (rest.status_code, rest.json()) == (500, {"message": "Internal server error"})
        http = requests.get(f"{api(fn)}/v2/count", timeout=30)
        assert (http.status_code, http.json()) == (500, {"message": "Internal Server Error"})
        url = requests.get(api(fn) + "/count", headers=url_host(fn), timeout=30)
        assert (url.status_code, url.json()) == (429, {"Message": "Rate Exceeded."})
    finally:
        busy.join()
    assert results == [200]


# ------------------------------------------------------------------------------------ the engine's caller
def test_frozen_between_requests_and_warm_on_the_next(web: Served) -> None:
    first = requests.get(f"{api(web)}/v2/count", timeout=30)
    assert first.json() == {"invocations": 1}
    web.wait_envs(lambda envs: len(envs) == 1 and envs[0]["state"] == "frozen")
    (env,) = web.environments()
    assert env["kernel_frozen"] is True
    second = requests.get(f"{api(web)}/v2/count", timeout=30)
    assert second.json() == {"invocations": 2}  # the same process, warm
    # END and REPORT are written once the runtime is back in `next`, before it freezes again.
    web.wait_envs(lambda envs: envs[0]["invocations"] == 2 and envs[0]["state"] == "frozen")
    assert [e["id"] for e in web.environments()] == [env["id"]]
    reports = [line for line in web.lines if line.startswith("REPORT")]
    assert len(reports) == 2 and "Init Duration" in reports[0] and "Init Duration" not in reports[1]


def test_invoke_api_lists_routes_and_url(web: Served) -> None:
    listed: list[dict[str, Any]] = requests.get(f"{web.emulator.url}/_lambda-freeze/functions", timeout=30).json()
    (function,) = listed
    assert function["function"] == "web"
    assert {(r["method"], r["path"]) for r in function["routes"]} == {
        ("GET", "/orders/{id}"),
        ("ANY", "/rest/{proxy+}"),
        ("ANY", "/v2/{proxy+}"),
        ("GET", "/v1/{proxy+}"),
    }
    assert function["url"] == f"http://web.lambda-url.localhost:{web.emulator.emulator.api_port}/"  # type: ignore[union-attr]


# ------------------------------------------------------------------------------------- response streaming
def test_function_url_response_stream_reaches_the_client_as_written(
    serve: Callable[..., Served], tmp_path: Path
) -> None:
    try:
        node_ric.command("nodejs20.x", FUNCTIONS / "node/url_stream", "index.handler")
    except ConfigError as exc:
        require(False, exc.message)
    fn = serve(
        "node/url_stream",
        name="streamer",
        handler="index.handler",
        runtime="nodejs20.x",
        url=FunctionUrl(invoke_mode="RESPONSE_STREAM"),
        server={"api_port": 0},
    )
    fifo = tmp_path / "go"
    os.mkfifo(fifo)
    with requests.get(api(fn) + f"/?pieces=3&fifo={fifo}", headers=url_host(fn), stream=True, timeout=30) as answer:
        assert answer.status_code == 201
        assert answer.headers["Transfer-Encoding"] == "chunked"
        assert answer.headers["X-Streamed"] == "yes" and answer.headers["Content-Type"] == "text/plain"
        assert answer.raw.headers.getlist("Set-Cookie") == ["s=1; Path=/"]
        lines = answer.iter_lines()
        assert next(lines) == b"piece 0"  # read while the function waits: it has not written piece 1 yet
        fifo.write_bytes(b"")  # opening the FIFO lets the function go on
        assert list(lines) == [b"piece 1", b"piece 2"]


def test_a_route_another_function_serves_is_refused(web: Served) -> None:
    clash = FunctionConfig(name="clash", code_dir=FUNCTIONS / "python/http", handler="app.handler", routes=(ROUTES[0],))

    async def add(emulator: Any) -> None:
        emulator.add_function(clash)

    with pytest.raises(ConfigError, match=r"route GET /orders/\{id\} \(rest\) is declared by both web and clash"):
        web.emulator.call(add)
    assert "clash" not in web.emulator.emulator.functions  # type: ignore[union-attr]

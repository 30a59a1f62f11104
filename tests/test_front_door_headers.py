"""Repeated request header fields, repeated query keys, cookies and the caller's address in the front door's events,
with real clients (raw sockets, curl, requests) and a real Python runtime: payload 1.0 keeps each field's values
apart (``multiValueHeaders``, ``headers`` the last), 2.0 joins them with commas and passes cookies apart; the
source IP is the connection's peer, and X-Forwarded-For gets it appended, as API Gateway and function URLs do."""

from __future__ import annotations

import json
import socket
import subprocess
from collections.abc import Callable
from typing import Any

import pytest
import requests

from conftest import Served
from emulator.config.http_routes import FunctionUrl, Route

pytestmark = pytest.mark.timeout(90)

# A loopback address other than 127.0.0.1 (all of 127/8 is loopback on Linux): a sourceIp of 127.0.0.2 can only come
# from the connection itself.
CLIENT_IP = "127.0.0.2"
ROUTES = (
    Route("rest", "GET", "/rest/{proxy+}"),
    Route("http", "GET", "/v2/{proxy+}"),
    Route("http", "GET", "/v1/{proxy+}", payload_version="1.0"),
)


@pytest.fixture
def web(serve: Callable[..., Served]) -> Served:
    return serve("python/http", name="web", routes=ROUTES, url=FunctionUrl(), server={"api_port": 0})


def port_of(fn: Served) -> int:
    port = fn.emulator.emulator.api_port  # type: ignore[union-attr]
    assert port is not None
    return port


def raw_get(fn: Served, target: str, fields: list[tuple[str, str]], *, host: str = "127.0.0.1") -> dict[str, Any]:
    """GET over a socket bound to CLIENT_IP, the header fields written exactly as given; the event the function
    echoed."""
    head = f"GET {target} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n"
    head += "".join(f"{name}: {value}\r\n" for name, value in fields) + "\r\n"
    with socket.create_connection(("127.0.0.1", port_of(fn)), timeout=60, source_address=(CLIENT_IP, 0)) as sock:
        sock.sendall(head.encode("latin-1"))
        answer = b""
        while chunk := sock.recv(65536):
            answer += chunk
    status, _, rest = answer.partition(b"\r\n")
    assert status == b"HTTP/1.1 200 OK", answer[:300]
    return json.loads(rest.partition(b"\r\n\r\n")[2])  # type: ignore[no-any-return]


def curl_get(url: str, *options: str) -> dict[str, Any]:
    out = subprocess.run(
        ["curl", "-sS", "--fail", "--interface", CLIENT_IP, *options, url], capture_output=True, timeout=60
    )
    assert out.returncode == 0, out.stderr.decode()
    return json.loads(out.stdout)  # type: ignore[no-any-return]


# ------------------------------------------------------------------------------------------- REST API, 1.0
def test_rest_event_keeps_repeated_fields_apart_over_a_raw_socket(web: Served) -> None:
    event = raw_get(
        web,
        "/rest/echo?tag=a&tag=b&one=1",
        [
            ("X-Dup", "a"),
            ("Cookie", "s=1"),
            ("x-dup", "b, c"),  # a value with a comma in it stays one value; the name's spelling does not matter
            ("Cookie", "t=2; u=3"),
            ("X-Forwarded-For", "203.0.113.9"),
        ],
    )
    assert event["multiValueHeaders"]["x-dup"] == ["a", "b, c"]
    assert event["headers"]["x-dup"] == "b, c"  # the last value
    assert event["multiValueHeaders"]["cookie"] == ["s=1", "t=2; u=3"]
    assert event["headers"]["cookie"] == "t=2; u=3"
    assert event["multiValueHeaders"]["host"] == ["127.0.0.1"]
    assert event["queryStringParameters"] == {"tag": "b", "one": "1"}
    assert event["multiValueQueryStringParameters"] == {"tag": ["a", "b"], "one": ["1"]}
    # the peer, not the header the client wrote; the header passes on with the peer appended
    assert event["requestContext"]["identity"]["sourceIp"] == CLIENT_IP
    assert event["headers"]["x-forwarded-for"] == f"203.0.113.9, {CLIENT_IP}"
    assert event["multiValueHeaders"]["x-forwarded-for"] == [f"203.0.113.9, {CLIENT_IP}"]


def test_rest_event_through_requests_a_spoofed_forwarded_for_is_not_the_source(web: Served) -> None:
    port = port_of(web)
    event = requests.get(
        f"http://127.0.0.1:{port}/rest/echo?k=1&k=2",
        headers={"X-Forwarded-For": "10.9.9.9, 10.8.8.8", "User-Agent": "probe/1"},
        timeout=30,
    ).json()
    identity = event["requestContext"]["identity"]
    assert (identity["sourceIp"], identity["userAgent"]) == ("127.0.0.1", "probe/1")
    assert event["headers"]["x-forwarded-for"] == "10.9.9.9, 10.8.8.8, 127.0.0.1"
    assert event["multiValueHeaders"]["user-agent"] == ["probe/1"]
    assert event["queryStringParameters"] == {"k": "2"}
    assert event["multiValueQueryStringParameters"] == {"k": ["1", "2"]}


def test_http_api_payload_1_0_keeps_repeated_fields_apart(web: Served) -> None:
    event = raw_get(web, "/v1/echo?q=1&q=2", [("X-Dup", "a"), ("X-Dup", "b")])
    assert event["version"] == "1.0"
    assert event["multiValueHeaders"]["x-dup"] == ["a", "b"]
    assert event["headers"]["x-dup"] == "b"
    assert event["multiValueQueryStringParameters"] == {"q": ["1", "2"]}
    assert event["requestContext"]["identity"]["sourceIp"] == CLIENT_IP
    assert event["headers"]["x-forwarded-for"] == CLIENT_IP  # none sent: the peer alone


# ----------------------------------------------------------------------------------------- HTTP API, 2.0
def test_http_api_event_joins_repeated_fields_and_splits_cookies_through_curl(web: Served) -> None:
    event = curl_get(
        f"http://127.0.0.1:{port_of(web)}/v2/echo?k=1&k=2&e=",
        *("-H", "X-Dup: a", "-H", "X-Dup: b, c"),
        *("-H", "Cookie: a=1", "-H", "Cookie: b=2; c=3"),
        *("-H", "X-Forwarded-For: 198.51.100.7", "-A", "curl-probe"),
    )
    headers = event["headers"]
    assert headers["x-dup"] == "a,b, c"  # joined with commas; each value as sent
    assert "cookie" not in headers
    assert event["cookies"] == ["a=1", "b=2", "c=3"]  # every Cookie field, one entry per cookie
    assert headers["x-forwarded-for"] == f"198.51.100.7, {CLIENT_IP}"
    assert event["queryStringParameters"] == {"k": "1,2", "e": ""}
    assert event["rawQueryString"] == "k=1&k=2&e="
    assert event["requestContext"]["http"] == {
        "method": "GET",
        "path": "/v2/echo",
        "protocol": "HTTP/1.1",
        "sourceIp": CLIENT_IP,
        "userAgent": "curl-probe",
    }


# ----------------------------------------------------------------------------------------- function URLs
def test_function_url_event_as_2_0_over_a_raw_socket(web: Served) -> None:
    event = raw_get(
        web,
        "/any/echo?x=1&x=2",
        [("Accept", "text/html"), ("Cookie", "a=1"), ("Accept", "application/json"), ("Cookie", "b=2")],
        host=f"web.lambda-url.localhost:{port_of(web)}",
    )
    assert event["routeKey"] == "$default"
    assert event["headers"]["accept"] == "text/html,application/json"
    assert event["cookies"] == ["a=1", "b=2"]
    assert "cookie" not in event["headers"]
    assert event["queryStringParameters"] == {"x": "1,2"}
    assert event["requestContext"]["http"]["sourceIp"] == CLIENT_IP
    assert event["headers"]["x-forwarded-for"] == CLIENT_IP

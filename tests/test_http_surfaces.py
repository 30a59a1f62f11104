"""The HTTP surfaces' decisions on hostile or odd input, against a real emulator and real runtimes: client context
bounds, extension names, and one environment's runtime reaching another's Runtime API."""

from __future__ import annotations

import base64
import http.client
import json
import logging
import threading
from pathlib import Path
from typing import Any

import pytest
from botocore.exceptions import ClientError

from emulator.cli import _parser, _server_config
from emulator.config import ServerConfig
from runtime_api.http import HttpLimits

FUNCTIONS = Path(__file__).parent / "functions"


def _invoke_error(fn: Any, **kwargs: Any) -> dict[str, Any]:
    with pytest.raises(ClientError) as caught:
        fn.invoke({"action": "address"}, **kwargs)
    return caught.value.response  # type: ignore[no-any-return]


def test_a_client_context_over_lambdas_limit_or_nested_too_deep_is_a_400(serve, caplog) -> None:
    fn = serve("python/prober")
    at_limit = base64.b64encode(json.dumps({"custom": {"k": "v" * 2600}}).encode()).decode()
    assert len(at_limit) <= 3583
    assert fn.invoke({"action": "address"}, ClientContext=at_limit).status == 200
    over = base64.b64encode(json.dumps({"custom": {"k": "v" * 2700}}).encode()).decode()
    assert len(over) > 3583
    error = _invoke_error(fn, ClientContext=over)
    assert (error["Error"]["Code"], error["ResponseMetadata"]["HTTPStatusCode"]) == (
        "InvalidRequestContentException",
        400,
    )
    nested = base64.b64encode(b"[" * 1000).decode()  # RecursionError in the JSON parser
    with caplog.at_level(logging.ERROR):
        error = _invoke_error(fn, ClientContext=nested)
    assert (error["Error"]["Code"], error["ResponseMetadata"]["HTTPStatusCode"]) == (
        "InvalidRequestContentException",
        400,
    )
    assert not [r for r in caplog.records if r.exc_info], "nothing unexpected was logged"


def _post(address: str, path: str, headers: dict[str, str] | None = None) -> tuple[int, dict[str, Any]]:
    host, port = address.rsplit(":", 1)
    connection = http.client.HTTPConnection(host, int(port), timeout=10)
    try:
        connection.request("POST", path, body=b'{"events": ["INVOKE"]}', headers=headers or {})
        response = connection.getresponse()
        return response.status, json.loads(response.read())
    finally:
        connection.close()


@pytest.mark.parametrize(
    "name",
    [b"../../x", b"a" * 5000, b"\xff\xfe", b"with/slash", b".."],
)
def test_an_extension_name_must_be_a_file_name(serve, name: bytes) -> None:
    fn = serve("python/prober")
    address = fn.invoke({"action": "address"}).payload
    host, port = address.rsplit(":", 1)
    connection = http.client.HTTPConnection(host, int(port), timeout=10)
    try:
        connection.putrequest("POST", "/2020-01-01/extension/register")
        connection.putheader("Lambda-Extension-Name", name)
        connection.putheader("Content-Length", "2")
        connection.endheaders(b"{}")
        response = connection.getresponse()
        status, body = response.status, json.loads(response.read())
    finally:
        connection.close()
    assert (status, body["errorType"]) == (403, "Extension.InvalidExtensionName")


def test_a_runtime_cannot_drive_another_environments_runtime_api(serve) -> None:
    fn = serve("python/prober", reserved_concurrency=2, timeout_s=30)
    first_address = fn.invoke({"action": "address"}).payload
    slow: dict[str, Any] = {}
    caller = threading.Thread(target=lambda: slow.update(result=fn.invoke({"action": "sleep", "seconds": 2})))
    caller.start()
    fn.wait_envs(lambda envs: any(env["state"] == "invoking" for env in envs))
    # the busy environment is the first one: this invocation starts a second, whose runtime calls the first's API
    path = "/2018-06-01/runtime/invocation/00000000-0000-4000-8000-000000000000/response"
    answer = fn.invoke({"action": "post", "address": first_address, "path": path}).payload
    assert answer["status"] == 403, answer
    assert json.loads(answer["body"])["errorType"] == "AccessDenied"
    second_address = fn.invoke({"action": "address"}).payload
    assert second_address != first_address
    caller.join(30)
    assert (slow["result"].status, slow["result"].payload) == (200, "slept")  # untouched
    # a local process outside every environment (this test, curl) is still let in, and judged by the engine
    status, error = _post(first_address, path)
    assert 400 <= status < 500
    assert error["errorType"] in ("InvalidRequestID", "InvalidStateTransition")


def test_the_http_limits_come_from_flags_and_the_config_file(tmp_path: Path) -> None:
    config_file = tmp_path / "functions.toml"
    config_file.write_text(
        "[server]\nhttp_header_timeout = 12\nhttp_idle_timeout = 0\nhttp_body_timeout = 7.5\n"
        "http_max_connections = 50\n"
    )
    from_file = ServerConfig.load(file=config_file, environ={})
    assert from_file.http_limits() == HttpLimits(
        header_timeout_s=12, idle_timeout_s=None, body_timeout_s=7.5, max_connections=50
    )
    args = _parser().parse_args(
        ["serve", "--config", str(config_file), "--code-dir", str(FUNCTIONS / "python/prober"), "--handler",
         "app.handler", "--http-header-timeout", "5", "--http-max-connections", "9"]
    )
    limits = _server_config(args).http_limits()
    assert (limits.header_timeout_s, limits.body_timeout_s, limits.max_connections) == (5, 7.5, 9)
    assert ServerConfig().http_limits() == HttpLimits()  # the documented defaults

"""Exposure: what the emulator lets reach it, and what one function can see of another.

The Invoke API listens on loopback unless told otherwise (and says so loudly when it is not); each Runtime API
endpoint is on loopback, on a port of its own, and answers only for its own environment's invocations, whose
request ids cannot be guessed; a function sees its own variables and code only; handler strings and settings are
passed as arguments and variables, never through a shell.
"""

from __future__ import annotations

import http.client
import json
import shutil
import signal
import socket
import threading
import uuid
from pathlib import Path

import pytest
from test_cli import Serve

from conftest import FUNCTIONS, lambda_client
from emulator import FunctionConfig, ServerConfig
from emulator.engine import lambda_paths
from emulator.testing import CollectingSink, EmulatorThread

pytestmark = pytest.mark.timeout(90)


def _listening_addresses(port: int) -> set[str]:
    """The local addresses the kernel has a listening TCP socket on for ``port`` (from /proc/net/tcp{,6})."""
    found = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        for line in Path(table).read_text().splitlines()[1:]:
            local, state = line.split()[1], line.split()[3]
            address, hex_port = local.split(":")
            if state == "0A" and int(hex_port, 16) == port:  # 0A: LISTEN
                if len(address) == 8:
                    found.add(socket.inet_ntop(socket.AF_INET, bytes.fromhex(address)[::-1]))
                else:
                    words = [bytes.fromhex(address[i : i + 8])[::-1] for i in range(0, 32, 8)]
                    found.add(socket.inet_ntop(socket.AF_INET6, b"".join(words)))
    return found


def test_the_invoke_api_listens_on_loopback_unless_told_otherwise():
    served = Serve("--code-dir", str(FUNCTIONS / "python/basic"), "--handler", "app.handler")
    try:
        port = int(served.url.rsplit(":", 1)[1])
        assert served.url.startswith("http://127.0.0.1:")
        assert _listening_addresses(port) == {"127.0.0.1"}
        assert not any("other machines" in line for line in served.stderr)
    finally:
        assert served.stop(signal.SIGTERM) == 0


def test_listening_on_every_address_is_said_loudly():
    served = Serve("--code-dir", str(FUNCTIONS / "python/basic"), "--handler", "app.handler", "--host", "0.0.0.0")
    try:
        port = int(served.url.rsplit(":", 1)[1])
        assert _listening_addresses(port) == {"0.0.0.0"}
    finally:
        served.stop(signal.SIGTERM)
    warning = [line for line in served.stderr if "0.0.0.0" in line and "other machines" in line]
    assert warning and "WARNING" in warning[0], served.stderr


def _post(address: str, path: str, body: bytes = b"{}") -> tuple[int, dict[str, str]]:
    host, port = address.rsplit(":", 1)
    connection = http.client.HTTPConnection(host, int(port), timeout=10)
    try:
        connection.request("POST", path, body=body, headers={"Content-Type": "application/json"})
        response = connection.getresponse()
        return response.status, json.loads(response.read())
    finally:
        connection.close()


def test_a_runtime_endpoint_answers_only_for_its_own_environment(serve):
    fn = serve("python/basic", reserved_concurrency=2, timeout_s=30)
    slow: dict[str, object] = {}
    caller = threading.Thread(target=lambda: slow.update(result=fn.invoke({"action": "sleep", "seconds": 3})))
    caller.start()
    fn.wait_envs(lambda envs: any(env["state"] == "invoking" for env in envs))
    (busy,) = fn.environments()
    assert busy["current_request_id"]
    other_env = fn.invoke({"action": "env"})  # the busy environment cannot take it: a second one starts
    address = other_env.payload["AWS_LAMBDA_RUNTIME_API"]
    assert address.startswith("127.0.0.1:")
    assert _listening_addresses(int(address.rsplit(":", 1)[1])) == {"127.0.0.1"}
    assert uuid.UUID(busy["current_request_id"]).version == 4  # random request ids: nothing to guess from

    # The busy environment's request id, answered through the other environment's endpoint: refused.
    status, error = _post(address, f"/2018-06-01/runtime/invocation/{busy['current_request_id']}/response")
    assert 400 <= status < 500
    assert error["errorType"] in ("InvalidRequestID", "InvalidStateTransition")
    caller.join(30)
    result = slow["result"]
    assert (result.status, result.payload, result.function_error) == (200, "slept", None)  # untouched
    assert len(fn.environments()) == 2


def test_a_function_sees_its_own_variables_and_code_only(tmp_path):
    functions = []
    for name in ("alpha", "beta"):
        code = tmp_path / name
        shutil.copytree(FUNCTIONS / "python/basic", code)
        functions.append(
            FunctionConfig(name=name, code_dir=code, handler="app.handler", env={f"SECRET_{name.upper()}": name})
        )
    config = ServerConfig(port=0, functions=tuple(functions))
    with EmulatorThread(config, sink=CollectingSink()) as emu:
        client = lambda_client(emu.url)
        seen = {}
        for name in ("alpha", "beta"):
            response = client.invoke(FunctionName=name, Payload=b'{"action": "env"}')
            seen[name] = json.loads(response["Payload"].read())
            assert "FunctionError" not in response
    for name, other in (("alpha", "beta"), ("beta", "alpha")):
        env = seen[name]
        assert env[f"SECRET_{name.upper()}"] == name
        assert f"SECRET_{other.upper()}" not in env
        assert env["AWS_LAMBDA_FUNCTION_NAME"] == name
        assert env["LAMBDA_TASK_ROOT"] == ("/var/task" if lambda_paths.available() else str(tmp_path / name))
        assert str(tmp_path / other) not in json.dumps(env)
        assert env["AWS_LAMBDA_RUNTIME_API"] != seen[other]["AWS_LAMBDA_RUNTIME_API"]


def test_handlers_and_settings_never_reach_a_shell(serve, tmp_path):
    handler_marker = tmp_path / "from-handler"
    value_marker = tmp_path / "from-value"
    hostile_value = f"$(touch {value_marker}); `touch {value_marker}`"
    fn = serve("python/basic", handler=f"app.handler; touch {handler_marker}", env={"HOSTILE": hostile_value})
    result = fn.invoke({"action": "env"})
    assert result.function_error == "Unhandled"  # no such handler: the string is a module path, not a command
    assert result.payload["errorType"].startswith("Runtime.")
    fn = serve("python/basic", name="plain", env={"HOSTILE": hostile_value})
    result = fn.invoke({"action": "env"})
    assert result.payload["HOSTILE"] == hostile_value  # arrived as it was written
    assert not handler_marker.exists() and not value_marker.exists()

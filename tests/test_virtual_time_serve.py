"""``serve --virtual-time``: a served function's frozen environment has its clocks moved by
``POST /_lambda-freeze/environments/{id}/advance``, and the real runtime client sees them moved on the next invoke;
the call's errors in Lambda's shape (404, 409, 400)."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fuzzing import ServeProcess, assert_aws_error, http_call

from conftest import FUNCTIONS, require
from emulator import cli
from emulator.config.settings import ServerConfig
from emulator.engine import clock
from emulator.errors import ConfigError, LambdaFreezeError

pytestmark = pytest.mark.timeout(120)

GAP_S = 900.0
TIMEOUT_S = 30.0
STATE_WAIT_S = 20.0  # a cold start under a loaded 2-core CI
VIRTUAL_CLOCK = FUNCTIONS / "python/virtual_clock"


def _serve(*args: str) -> Iterator[ServeProcess]:
    try:
        clock.preload_library()
    except LambdaFreezeError as exc:
        require(False, exc.message)
    emulator = ServeProcess(VIRTUAL_CLOCK, *args, timeout_s=TIMEOUT_S)
    try:
        yield emulator
    finally:
        emulator.stop()


@pytest.fixture
def virtual() -> Iterator[ServeProcess]:
    yield from _serve("--virtual-time")


@pytest.fixture
def real() -> Iterator[ServeProcess]:
    yield from _serve()


def _invoke(served: ServeProcess, event: dict[str, Any]) -> dict[str, Any]:
    path = f"/2015-03-31/functions/{served.name}/invocations"
    status, headers, body = http_call(served.port, "POST", path, json.dumps(event).encode(), timeout_s=TIMEOUT_S)
    assert status == 200 and "X-Amz-Function-Error" not in headers, (status, body)
    result: dict[str, Any] = json.loads(body)
    return result


def _await_state(served: ServeProcess, state: str) -> dict[str, Any]:
    """The function's one environment once the inspection API shows it in ``state`` (each look is a request: the
    state is the server's, with no event to subscribe to)."""
    deadline = time.monotonic() + STATE_WAIT_S
    while True:
        status, _, body = http_call(served.port, "GET", "/_lambda-freeze/environments")
        assert status == 200, body
        environments = json.loads(body)
        if len(environments) == 1 and environments[0]["state"] == state:
            return dict(environments[0])
        assert time.monotonic() < deadline, f"no environment became {state}: {environments}"


def _advance(served: ServeProcess, env_id: str, body: bytes) -> tuple[int, Any, bytes]:
    return http_call(served.port, "POST", f"/_lambda-freeze/environments/{env_id}/advance", body)


def test_an_advance_call_moves_a_frozen_environments_clocks_for_its_next_invoke(virtual: ServeProcess) -> None:
    first = _invoke(virtual, {})
    assert not first["reaped"]
    env = _await_state(virtual, "frozen")
    started = time.monotonic()
    status, _, body = _advance(virtual, env["id"], json.dumps({"seconds": GAP_S}).encode())
    assert status == 200, body
    described = json.loads(body)
    assert described["id"] == env["id"] and described["virtual_offset_s"] == GAP_S
    second = _invoke(virtual, {"await_reaper_s": 5})
    real_s = time.monotonic() - started
    for key in ("wall_s", "monotonic_s", "boottime_s"):
        moved = second[key] - first[key]
        assert GAP_S <= moved < GAP_S + 10.0, (key, moved)  # the gap plus the real time between the invokes
    assert real_s < 10.0, real_s  # the 15 minutes took no real wait
    assert second["reaped"]  # the runtime's 10-minute idle timer, on its own thread, saw the gap
    # Lambda-Runtime-Deadline-Ms is on the runtime's clock: the remaining time is still the function's timeout.
    assert TIMEOUT_S * 1000 - 5000 < second["remaining_ms"] <= TIMEOUT_S * 1000


def test_advance_answers_404_for_an_unknown_environment_and_400_for_a_bad_body(virtual: ServeProcess) -> None:
    _invoke(virtual, {})
    env = _await_state(virtual, "frozen")
    status, headers, body = _advance(virtual, "no-such-environment", b'{"seconds": 60}')
    assert status == 404 and assert_aws_error(status, headers, body) == "ResourceNotFoundException"
    for bad in (b"{}", b"not json", b'{"seconds": -1}', b'{"seconds": "60"}', b'{"seconds": true}', b"[60]"):
        status, headers, body = _advance(virtual, env["id"], bad)
        assert status == 400, (bad, status, body)
        assert assert_aws_error(status, headers, body) in (
            "InvalidParameterValueException",
            "InvalidRequestContentException",
        )
    # None of them moved the clock.
    assert _await_state(virtual, "frozen")["virtual_offset_s"] == 0


def test_advance_answers_409_while_the_environment_is_invoking(virtual: ServeProcess) -> None:
    _invoke(virtual, {})
    _await_state(virtual, "frozen")
    # An invocation that waits 3 s in its handler: the environment is thawed (invoking) meanwhile.
    answered: list[dict[str, Any]] = []
    caller = threading.Thread(target=lambda: answered.append(_invoke(virtual, {"timed_wait_s": 3})))
    caller.start()
    try:
        env = _await_state(virtual, "invoking")
        status, headers, body = _advance(virtual, env["id"], b'{"seconds": 60}')
        assert status == 409 and assert_aws_error(status, headers, body) == "ResourceConflictException"
        assert b"frozen" in body
    finally:
        caller.join(TIMEOUT_S)
    assert answered and answered[0]["waited_s"] < 60  # the clock stayed where it was


def test_advance_answers_409_for_a_function_in_real_time(real: ServeProcess) -> None:
    _invoke(real, {})
    env = _await_state(real, "frozen")
    assert env["virtual_offset_s"] is None
    status, headers, body = _advance(real, env["id"], b'{"seconds": 60}')
    assert status == 409 and assert_aws_error(status, headers, body) == "ResourceConflictException"
    assert b"--virtual-time" in body


# ------------------------------------------------------------------------------------------------- configuration
def _serve_config(*words: str) -> ServerConfig:
    return cli._server_config(cli._parser("serve").parse_args(["serve", *words]))


def test_virtual_time_is_a_function_key_and_a_serve_option(tmp_path: Path) -> None:
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    file = tmp_path / "lambda-freeze.toml"
    file.write_text(
        '[functions.A]\ncode_dir = "a"\nhandler = "app.handler"\nvirtual_time = true\n'
        '[functions.B]\ncode_dir = "b"\nhandler = "app.handler"\n'
    )
    by_name = {f.name: f.virtual_time for f in ServerConfig.load(file=file, environ={}).functions}
    assert by_name == {"A": True, "B": False}
    served = _serve_config("--config", str(file), "--virtual-time")
    assert {f.name: f.virtual_time for f in served.functions} == {"A": True, "B": True}
    assert {f.name: f.virtual_time for f in _serve_config("--config", str(file)).functions} == by_name


def test_serve_virtual_time_refuses_a_provided_runtime(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"provided\.al2023 runtime"):
        _serve_config("--code-dir", str(tmp_path), "--runtime", "provided.al2023", "--virtual-time")

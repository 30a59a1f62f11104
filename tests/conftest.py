"""Shared fixtures: functions served by an in-process emulator, called through boto3 (a real client)."""

from __future__ import annotations

import base64
import json
import os
import subprocess
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import boto3
import pytest
from botocore.config import Config

from emulator import FunctionConfig, ServerConfig
from emulator.engine.freezer import BACKENDS
from emulator.errors import FreezerUnavailable
from emulator.testing import CollectingSink, EmulatorThread

FUNCTIONS = Path(__file__).parent / "functions"
IN_CI = os.environ.get("CI", "").lower() == "true"


# Programs a test started that must not outlive it (``lambda-freeze serve`` in test_cli.Serve): a test that fails
# before it stops one of them would otherwise leave it, its runtimes and its cgroups running.
STARTED: list[subprocess.Popen[Any]] = []


@pytest.fixture(autouse=True)
def _stop_what_the_test_left() -> Iterator[None]:
    before = len(STARTED)  # those of wider-scoped fixtures (set up before this one) are theirs to stop
    yield
    while len(STARTED) > before:
        proc = STARTED.pop()
        if proc.poll() is None:
            proc.terminate()  # the emulator's own shutdown, which removes its cgroups
            try:
                proc.communicate(timeout=20)
            except subprocess.TimeoutExpired:
                proc.kill()  # its watchdog cleans up
                proc.communicate()


def require(condition: bool, what: str) -> None:
    """A missing prerequisite skips locally and fails under CI=true, where every prerequisite must be there."""
    if condition:
        return
    if IN_CI:
        pytest.fail(f"prerequisite missing under CI: {what}")
    pytest.skip(what)


_freezer_checks: dict[str, str | None] = {}


def freezer_problem(name: str) -> str | None:
    if name not in _freezer_checks:
        try:
            BACKENDS[name]().close()
            _freezer_checks[name] = None
        except FreezerUnavailable as exc:
            _freezer_checks[name] = exc.message
    return _freezer_checks[name]


def lambda_client(url: str) -> Any:
    return boto3.client(
        "lambda",
        endpoint_url=url,
        region_name="us-east-1",
        aws_access_key_id="lambda-freeze",
        aws_secret_access_key="lambda-freeze",
        config=Config(retries={"max_attempts": 0, "mode": "standard"}, read_timeout=120, connect_timeout=10),
    )


@dataclass
class Result:
    status: int
    payload: Any
    raw: bytes
    function_error: str | None
    log: str
    request_id: str


@dataclass
class Served:
    emulator: EmulatorThread
    client: Any
    name: str
    sink: CollectingSink

    def invoke(self, payload: Any = None, *, tail: bool = True, **kwargs: Any) -> Result:
        response = self.client.invoke(
            FunctionName=kwargs.pop("function_name", self.name),
            Payload=json.dumps(payload if payload is not None else {}).encode(),
            LogType="Tail" if tail else "None",
            **kwargs,
        )
        raw = response["Payload"].read()
        log = base64.b64decode(response.get("LogResult", "")).decode() if tail else ""
        return Result(
            status=response["StatusCode"],
            payload=json.loads(raw) if raw else None,
            raw=raw,
            function_error=response.get("FunctionError"),
            log=log,
            request_id=response["ResponseMetadata"]["RequestId"],
        )

    def environments(self) -> list[dict[str, Any]]:
        return self.emulator.environments(self.name)

    def wait_for(self, predicate: Callable[[Any], bool], timeout_s: float = 30.0) -> None:
        """Await a state of the emulator (``predicate(emulator)``), re-checked on every timeline event."""
        self.emulator.wait_for(predicate, timeout_s)

    def wait_envs(self, predicate: Callable[[list[dict[str, Any]]], bool], timeout_s: float = 30.0) -> None:
        """Await a state of this function's environments, as the inspection API describes them."""
        name = self.name
        self.wait_for(
            lambda emu: predicate([env.describe() for env in emu.functions[name].environments.values()]), timeout_s
        )

    def wait_kernel_frozen(self, env_id: str) -> bool:
        async def wait(emulator: Any) -> bool:
            env = emulator.functions[self.name].environments[env_id]
            return bool(await env.wait_kernel_frozen())

        return self.emulator.call(wait)

    @property
    def lines(self) -> list[str]:
        return self.sink.lines(self.name)


@pytest.fixture
def serve() -> Iterator[Callable[..., Served]]:
    """Factory: ``serve("python/basic", freezer="cgroup2", timeout_s=3)``; what it starts stops at teardown."""
    started: list[EmulatorThread] = []

    def factory(
        code: str,
        *,
        handler: str = "app.handler",
        runtime: str = "python3.11",
        freezer: str = "auto",
        name: str = "fn",
        server: dict[str, Any] | None = None,
        **settings: Any,
    ) -> Served:
        if freezer != "auto":
            problem = freezer_problem(freezer)
            require(problem is None, f"freezer {freezer}: {problem}")
        code_dir = Path(code) if Path(code).is_absolute() else FUNCTIONS / code
        config = FunctionConfig(name=name, code_dir=code_dir, handler=handler, runtime=runtime, **settings)
        sink = CollectingSink()
        server_config = ServerConfig(port=0, freezer=freezer, functions=(config,), **(server or {}))
        emu = EmulatorThread(server_config, sink=sink).start()
        started.append(emu)
        return Served(emu, lambda_client(emu.url), name, sink)

    yield factory
    for emu in started:
        emu.stop()


FREEZERS = ["cgroup2", "cgroup1", "sigstop"]

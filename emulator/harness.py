"""Functions under lambda-freeze for synchronous callers: start, invoke over HTTP, keep frozen, inspect, stop.

What the pytest fixtures hand out, and usable from any script:

    with LambdaFreeze() as lf:
        fn = lf.function("samples/python/hello", handler="app.handler")
        print(fn.invoke({"name": "Ada"}).payload)
"""

from __future__ import annotations

import atexit
import base64
import concurrent.futures
import functools
import itertools
import json
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .config.http_routes import routes_from_toml, url_from_toml
from .config.keys import function_settings
from .config.settings import FunctionConfig, ServerConfig
from .engine.lifecycle import State
from .errors import LambdaFreezeError
from .proxy import Proxy, Toxic
from .server import Emulator
from .testing import CollectingSink, EmulatorThread

if TYPE_CHECKING:
    from .databases import DatabaseLogin

_names = itertools.count(1)


class InvokeError(LambdaFreezeError):
    """The Invoke API refused the call (404, 413, 429, ...): ``error_type`` is what AWS would name it."""

    def __init__(self, status: int, error_type: str, message: str, body: dict[str, Any]):
        super().__init__(message)
        self.status = status
        self.error_type = error_type
        self.body = body


@dataclass(frozen=True)
class InvokeResult:
    status: int
    request_id: str
    raw: bytes
    function_error: str | None  # "Unhandled" when the function failed
    log: str  # the last 4 KB of the invocation's log (LogType Tail)

    @property
    def ok(self) -> bool:
        return self.function_error is None

    @property
    def payload(self) -> Any:
        return json.loads(self.raw) if self.raw else None

    @property
    def error_type(self) -> str | None:
        return str(self.payload.get("errorType")) if not self.ok and isinstance(self.payload, dict) else None

    @property
    def error_message(self) -> str | None:
        return str(self.payload.get("errorMessage")) if not self.ok and isinstance(self.payload, dict) else None


class LambdaFunction:
    """One function served by a harness emulator."""

    def __init__(self, emulator: EmulatorThread, config: FunctionConfig, sink: CollectingSink):
        self._emulator = emulator
        self.config = config
        self.name = config.name
        self._sink = sink
        self._client: Any = None
        self.aws: Any = None  # the AwsResources whose endpoint the function reaches, when it came from one

    @property
    def url(self) -> str:
        """The Invoke API of the emulator serving this function."""
        return self._emulator.url

    @property
    def http(self) -> str:
        """The HTTP front door's base URL: the function's API routes are served at its root
        (``requests.get(fn.http + "/orders/42")``)."""
        emulator = self._emulator.emulator
        if emulator is None or emulator.api_url is None:
            raise RuntimeError("the emulator serving this function has no front door")
        return emulator.api_url

    @property
    def function_url(self) -> str:
        """The function URL (``http://<name>.lambda-url.localhost:<port>/``; curl and browsers resolve
        ``*.localhost``, other clients connect to ``http`` with this URL's host in the Host header)."""
        emulator = self._emulator.emulator
        if emulator is None or self.config.url is None:
            raise RuntimeError(f"function {self.name} has no function URL: pass url=FunctionUrl(...)")
        return emulator.function_url(self.name)

    @property
    def client(self) -> Any:
        """A boto3 Lambda client for the emulator (boto3 must be installed)."""
        if self._client is None:
            import boto3
            from botocore.config import Config

            self._client = boto3.client(
                "lambda",
                endpoint_url=self.url,
                region_name=self.config.region,
                aws_access_key_id="lambda-freeze",
                aws_secret_access_key="lambda-freeze",
                config=Config(retries={"max_attempts": 0, "mode": "standard"}, read_timeout=900),
            )
        return self._client

    def _post(self, payload: Any, headers: dict[str, str]) -> InvokeResult:
        body = payload if isinstance(payload, bytes) else json.dumps({} if payload is None else payload).encode()
        request = urllib.request.Request(
            f"{self.url}/2015-03-31/functions/{self.name}/invocations", data=body, headers=headers, method="POST"
        )
        try:
            with urllib.request.urlopen(request, timeout=self.config.timeout_s + 60) as response:
                raw = response.read()
                log = response.headers.get("X-Amz-Log-Result")
                return InvokeResult(
                    status=response.status,
                    request_id=response.headers.get("x-amzn-RequestId", ""),
                    raw=raw,
                    function_error=response.headers.get("X-Amz-Function-Error"),
                    log=base64.b64decode(log).decode("utf-8", "replace") if log else "",
                )
        except urllib.error.HTTPError as exc:
            text = exc.read()
            try:
                parsed = json.loads(text)
            except ValueError:
                parsed = {"message": text.decode("utf-8", "replace")}
            raise InvokeError(
                exc.code, exc.headers.get("x-amzn-ErrorType", "Unknown"), str(parsed.get("message", "")), parsed
            ) from None

    def invoke(
        self, event: Any = None, *, tail: bool = True, client_context: dict[str, Any] | None = None
    ) -> InvokeResult:
        """A synchronous invocation; with ``tail`` (the default) the result carries the invocation's log, and
        arrives once the runtime is back in ``next`` (so the environment is frozen again when this returns)."""
        headers = {"Content-Type": "application/json"}
        if tail:
            headers["X-Amz-Log-Type"] = "Tail"
        if client_context is not None:
            headers["X-Amz-Client-Context"] = base64.b64encode(json.dumps(client_context).encode()).decode()
        return self._post(event, headers)

    def invoke_async(self, event: Any = None) -> str:
        """``InvocationType=Event``: queued, retried on failure; returns the request id."""
        return self._post(event, {"X-Amz-Invocation-Type": "Event"}).request_id

    # ---------------------------------------------------------------------------------------- inspection
    def environments(self) -> list[dict[str, Any]]:
        return self._emulator.environments(self.name)

    def async_status(self) -> dict[str, Any]:
        """Queued, retrying, in flight, delivered and failed asynchronous events, and the on-failure records."""
        return self._emulator.call(self._async_status)

    async def _async_status(self, emu: Emulator) -> dict[str, Any]:
        return self._status_of(emu)

    def _status_of(self, emu: Emulator) -> dict[str, Any]:
        status: Any = emu.async_status()
        failures = [f for f in status["failures"] if f"function:{self.name}:" in f["requestContext"]["functionArn"]]
        return {"failures": failures, **status["functions"][self.name]}

    def wait_async(self, predicate: Any, timeout_s: float = 30.0) -> None:
        """Until ``predicate(async_status)`` holds, e.g. ``lambda s: s["delivered"] == 5``; no polling."""
        self._emulator.wait_for(lambda emu: bool(predicate(self._status_of(emu))), timeout_s)

    @property
    def logs(self) -> list[str]:
        """Every log line of this function so far (runtime output and START/END/REPORT)."""
        return self._sink.lines(self.name)

    def wait_for(self, predicate: Any, timeout_s: float = 30.0) -> None:
        """Until ``predicate(environments)`` holds; re-checked on every engine event, no polling."""
        name = self.name
        self._emulator.wait_for(
            lambda emu: bool(predicate([e.describe() for e in emu.functions[name].environments.values()])), timeout_s
        )

    def wait_frozen(self, timeout_s: float = 30.0) -> None:
        """Until every live environment is idle, and frozen as far as the kernel is concerned."""
        name = self.name

        def idle(emu: Emulator) -> bool:
            envs = [e for e in emu.functions[name].environments.values() if e.lifecycle.live]
            return all(e.lifecycle.state in (State.FROZEN, State.READY) or e.suspended for e in envs)

        self._emulator.wait_for(idle, timeout_s)

        async def kernel(emu: Emulator) -> None:
            for env in list(emu.functions[name].environments.values()):
                if env.lifecycle.state is State.FROZEN and not await env.wait_kernel_frozen(timeout_s):
                    raise LambdaFreezeError(f"{env.id} did not freeze within {timeout_s} s")

        self._emulator.call(kernel, timeout_s + 5)

    def stop(self) -> None:
        """Stop the function and its environments now (otherwise they stop with the fixture)."""

        async def remove(emu: Emulator) -> None:
            await emu.remove_function(self.name)

        self._emulator.call(remove)

    def faults(self, upstream: str = "DB") -> FaultControl:
        """The fault proxy between this function and one of its upstreams (``upstreams={"DB": "host:port"}``)."""
        if upstream not in self.config.upstreams:
            raise LambdaFreezeError(
                f"function {self.name} has no upstream {upstream!r}: declare it, e.g. upstreams={{{upstream!r}: "
                "'127.0.0.1:5432'}, and connect to ${upstream}_HOST:${upstream}_PORT"
            )
        return FaultControl(self._emulator, self.name, upstream)

    def stay_frozen(self, seconds: float, *, virtual: bool = False) -> None:
        """Keep the function's environments frozen for ``seconds`` while time, databases and networks go on.

        ``virtual=True`` (a function made with ``virtual_time=True``): no real wait; each frozen environment's
        clocks move forward by ``seconds``, and its proxied connections age by as much, before the next thaw."""
        self.wait_frozen()
        if not virtual:
            time.sleep(seconds)  # wait-ok: the freeze is the scenario
            return
        name = self.name

        async def advance(emu: Emulator) -> None:
            for env in list(emu.functions[name].environments.values()):
                if env.lifecycle.live and env.lifecycle.state is State.FROZEN:
                    env.advance_clock(seconds)

        self._emulator.call(advance)


class FaultControl:
    """Add and remove toxics on a live function's upstream; read the proxy's connections and events."""

    def __init__(self, emulator: EmulatorThread, function: str, upstream: str):
        self._emulator = emulator
        self._function = function
        self._upstream = upstream

    def _proxy(self, emu: Emulator) -> Proxy:
        return emu.functions[self._function].proxies[self._upstream]

    def add(self, name: str, toxic: Toxic, *, direction: str = "downstream", env_id: str | None = None) -> None:
        """``toxic`` is one of ``emulator.proxy``'s (``IdleDrop(idle_s=1)``, ``WhileFrozen(mode="drop")``, ...)."""

        async def add(emu: Emulator) -> None:
            await self._proxy(emu).add_toxic(name, toxic, direction=direction, env_id=env_id)  # type: ignore[arg-type]

        self._emulator.call(add)

    def remove(self, name: str) -> None:
        async def remove(emu: Emulator) -> None:
            await self._proxy(emu).remove_toxic(name)

        self._emulator.call(remove)

    def server_idle_timeout(self, timeout_s: float, server: str) -> None:
        """Declare the upstream server's idle timeout (``server``: "postgresql" or "mariadb"): a virtual freeze
        closes a connection idle that long the way that server closes an idle session."""
        from .proxy.aging import ServerIdleTimeout

        declared = ServerIdleTimeout(timeout_s, server)  # type: ignore[arg-type]  # checked by the dataclass

        async def declare(emu: Emulator) -> None:
            self._proxy(emu).server_idle = declared

        self._emulator.call(declare)

    def server_idle_timeout_of(self, login: DatabaseLogin) -> None:
        """The idle timeout a database fixture gave its login (``lambda_freeze_postgres(idle_session_timeout_s=900)``,
        ``lambda_freeze_mysql(wait_timeout_s=28800)``), closed as that server closes an idle session."""
        if login.idle_timeout_s is None:
            raise LambdaFreezeError(f"login {login.user} has no idle timeout: create it with one")
        self.server_idle_timeout(login.idle_timeout_s, "postgresql" if login.kind == "postgresql" else "mariadb")

    def kill_connections(self, env_id: str | None = None) -> int:
        async def kill(emu: Emulator) -> int:
            return await self._proxy(emu).kill_connections(env_id)

        return self._emulator.call(kill)

    def connections(self) -> list[Any]:
        async def connections(emu: Emulator) -> list[Any]:
            return list(self._proxy(emu).connections())

        return self._emulator.call(connections)

    def events(self) -> list[dict[str, Any]]:
        async def events(emu: Emulator) -> list[dict[str, Any]]:
            return [e.as_dict() for e in self._proxy(emu).events]

        return self._emulator.call(events)


_Started = concurrent.futures.Future[tuple[EmulatorThread, CollectingSink]]


class _Spares:
    """Emulators started ahead, each with a spare process parked in its cgroups (``Emulator.keep_spare``), for the
    next ``LambdaFreeze`` asking for the same kind (the pytest plugin's next test's), started while one is in use, so
    that its first ``function(...)`` finds the emulator serving and the kernel's first ``cgroup.procs`` write paid.
    At most one per kind; those never taken stop when the process exits (or ``close()``)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._started: dict[tuple[str, str | None], _Started] = {}
        self._at_exit = False

    def take(self, freezer: str, aws_endpoint: str | None) -> tuple[EmulatorThread, CollectingSink] | None:
        """The one started for this kind, if it is serving; None if there is none, it is still starting (it stays
        for the next taker: a start of one's own is no slower than waiting for it) or it failed to start (the
        caller starts its own, which says why)."""
        with self._lock:
            started = self._started.get((freezer, aws_endpoint))
            if started is None or not started.done():
                return None
            del self._started[(freezer, aws_endpoint)]
        try:
            return started.result()
        except Exception:
            return None

    def start(self, freezer: str, aws_endpoint: str | None, once: Callable[[], None] | None = None) -> None:
        """Start one for this kind in the background, unless one is there already; ``once`` blocks until it should
        (an exception from it starts it at once)."""
        with self._lock:
            if (freezer, aws_endpoint) in self._started:
                return
            started: _Started = concurrent.futures.Future()
            self._started[(freezer, aws_endpoint)] = started
            if not self._at_exit:
                atexit.register(self.close)
                self._at_exit = True
        threading.Thread(
            target=self._start, args=(started, freezer, aws_endpoint, once), name="lambda-freeze-spare", daemon=True
        ).start()

    @staticmethod
    def _start(started: _Started, freezer: str, aws_endpoint: str | None, once: Callable[[], None] | None) -> None:
        try:
            if once is not None:
                once()
        except BaseException:
            pass
        try:
            sink = CollectingSink()
            emulator = EmulatorThread(_server_config(freezer, aws_endpoint), sink=sink).start()

            async def keep_spare(emu: Emulator) -> None:
                emu.keep_spare()

            emulator.call(keep_spare)
        except BaseException as exc:
            started.set_exception(exc)
            return
        started.set_result((emulator, sink))

    def close(self) -> None:
        """Stop every one not taken (their spare processes killed, their cgroups removed)."""
        with self._lock:
            started, self._started = list(self._started.values()), {}
        for future in started:
            try:
                emulator, _ = future.result(timeout=_SPARE_START_S)
            except Exception:
                continue
            emulator.stop()


_SPARE_START_S = 30.0
spares = _Spares()


def _first_start(emulator: EmulatorThread) -> None:
    """Until ``emulator``'s first runtime is released into its standby (or, without one, has ended its INIT), or the
    emulator stops. The runtime's INIT then runs in a process of its own: starting the next emulator meanwhile takes
    none of the time the test waits for (on a machine with a core for each), where starting it earlier would compete
    with this test's own start for the interpreter's lock."""

    def released(emu: Emulator) -> bool:
        return any((e.kind == "standby" and e.detail.get("event") == "adopted")
                   or (e.kind == "state" and e.detail.get("old") == "initializing") for e in emu.timeline.events)

    emulator.wait_for(released, timeout_s=24 * 3600.0)


def _server_config(freezer: str, aws_endpoint: str | None) -> ServerConfig:
    # The front door on a free port: fn.http serves a function's API routes and function URL.
    return ServerConfig(port=0, api_port=0, freezer=freezer, aws_endpoint=aws_endpoint)


class LambdaFreeze:
    """Starts functions in emulators of its own (one per freezer backend asked for); ``close()`` stops them all.

    With ``spare=True`` (the pytest plugin's fixture), the next emulator of each kind it uses starts in the background
    once its first environment starts (its INIT runs meanwhile), or at ``close()``, and the next
    ``LambdaFreeze(spare=True)`` takes it (``_Spares``)."""

    def __init__(
        self,
        *,
        freezer: str = "auto",
        base_dir: Path | None = None,
        aws_endpoint: str | None = None,
        spare: bool = False,
    ):
        self.freezer = freezer
        self.base_dir = base_dir  # relative code directories are looked up here first (the test file's folder)
        self.aws_endpoint = aws_endpoint  # the SQS/S3 endpoint functions and SQS mappings use (harness_aws)
        self.spare = spare
        self._emulators: dict[str, tuple[EmulatorThread, CollectingSink]] = {}
        self.functions: list[LambdaFunction] = []

    def function(
        self,
        code_dir: str | Path,
        handler: str = "app.handler",
        *,
        runtime: str = "python3.11",
        name: str | None = None,
        freezer: str | None = None,
        env: dict[str, str] | None = None,
        **settings: Any,
    ) -> LambdaFunction:
        """Serve a function; ``settings`` are the config file's keys (``timeout``, ``memory``, ``prewarm``, ...;
        ``timeout_s``, ``memory_mb`` too; ``routes`` and ``url`` as in a config file: ``routes=["GET /orders/{id}"],
        url=True``), and an unknown one is an error that lists them."""
        code = Path(code_dir)
        if not code.is_absolute() and self.base_dir is not None and (self.base_dir / code).is_dir():
            code = self.base_dir / code  # as pasted into another project: beside the test file
        code = code.resolve()
        if isinstance(settings.get("routes"), list):
            settings["routes"] = routes_from_toml(settings["routes"], "routes")
        if settings.get("url") is True or isinstance(settings.get("url"), dict):
            settings["url"] = url_from_toml(settings["url"], "url")
        config = FunctionConfig(
            name=name or f"{code.name.replace('.', '-')[:50]}-{next(_names)}",
            code_dir=code,
            handler=handler,
            runtime=runtime,
            env=dict(env or {}),
            **function_settings(settings, where="lambda_freeze.function()"),
        )
        emulator, sink = self._emulator(freezer or self.freezer)

        async def add(emu: Emulator) -> None:
            emu.add_function(config)

        emulator.call(add)
        if self.spare:  # the next test's emulator, started while this one's first INIT runs
            spares.start(freezer or self.freezer, self.aws_endpoint, once=functools.partial(_first_start, emulator))
        function = LambdaFunction(emulator, config, sink)
        self.functions.append(function)
        return function

    def _emulator(self, freezer: str) -> tuple[EmulatorThread, CollectingSink]:
        if freezer not in self._emulators:
            taken = spares.take(freezer, self.aws_endpoint) if self.spare else None
            if taken is None:
                sink = CollectingSink()
                taken = (EmulatorThread(_server_config(freezer, self.aws_endpoint), sink=sink).start(), sink)
            self._emulators[freezer] = taken
        return self._emulators[freezer]

    def close(self) -> None:
        for emulator, _ in self._emulators.values():
            emulator.stop()
        if self.spare:
            for freezer in self._emulators:
                spares.start(freezer, self.aws_endpoint)
        self._emulators.clear()

    def __enter__(self) -> LambdaFreeze:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

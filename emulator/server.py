"""The emulator as a whole: the engine (the freezer, the Runtime API server, a pool per function) put together
with the sources that invoke it (the Invoke API, asynchronous queues); what the CLI, the harness and tests start.

Lifecycle: ``await start()`` → serve → ``await stop()`` (every environment killed, every cgroup removed).
"""

from __future__ import annotations

import asyncio
import errno
import logging
import socket
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING

from runtime_api import InvokeApiServer, InvokeRequest, InvokeResult, RuntimeApiServer
from runtime_api.clock import add_routes as add_clock_routes
from runtime_api.event_sources import add_routes as add_event_source_routes
from runtime_api.front_door import FrontDoorServer

from .config.settings import FunctionConfig, ServerConfig
from .engine.context import EngineContext
from .engine.freezer import FreezerBackend, create_freezer
from .engine.logs import LogSink, StreamSink
from .engine.memory_limit import MemoryLimiter
from .engine.pool import FunctionPool
from .engine.preparation import prepare_all
from .engine.spare import Spare
from .engine.timeline import Timeline
from .errors import ConfigError
from .sources.async_invoke import AsyncQueue, FailureRecord, load_pending, save_pending
from .sources.clock_control import VirtualClocks
from .sources.control_plane import ControlPlane
from .sources.event_sources import EventSources
from .sources.front_door.source import FrontDoorSource
from .sources.invoke_api import InvokeApiSource

if TYPE_CHECKING:
    from .reload import CodeWatcher

log = logging.getLogger("lambda_freeze")


def listen_error(host: str, port: int, exc: OSError) -> str:
    """Why the Invoke API cannot listen, naming what to change: the address or the port."""
    where = f"cannot listen on {host}:{port}: {exc.strerror or exc}"
    if exc.errno == errno.EADDRNOTAVAIL or isinstance(exc, socket.gaierror):
        return f"{where} (no interface of this machine has that address: --host 127.0.0.1, or 0.0.0.0 for all)"
    if exc.errno == errno.EACCES and 0 < port < 1024:
        return f"{where} (ports below 1024 need root: choose --port 8080, or 0 for any free port)"
    return f"{where} (choose another --port, or 0 for any free port)"


class Emulator:
    def __init__(
        self,
        config: ServerConfig,
        *,
        sink: LogSink | None = None,
        timeline: Timeline | None = None,
        reload: bool = False,
    ):
        self.config = config
        self.reload = reload  # watch the functions' code and retire their environments when it changes
        self.watcher: CodeWatcher | None = None
        self.sink: LogSink = sink or StreamSink(prefix=len(config.functions) > 1)
        self.freezer: FreezerBackend | None = None
        self.functions: dict[str, FunctionPool] = {}
        self.queues: dict[str, AsyncQueue] = {}
        self.timeline = timeline if timeline is not None else Timeline()
        self.failures = FailureRecord(config.state_dir)
        # What invokes the functions; the Invoke API's server talks to it directly.
        self.source = InvokeApiSource(self.functions, self.queues, self.failures, self.timeline)
        # Queues, SQS event source mappings and schedules, with the AWS endpoint functions reach.
        self.events = EventSources(config.events, config.aws_endpoint, self.functions, self.queues, self.timeline)
        self._runtime_server = RuntimeApiServer(limits=config.http_limits())
        self._invoke_api: InvokeApiServer | None = None
        # The HTTP front door (API routes, function URLs), served on its own port when api_port is set.
        self.front_door = FrontDoorSource(self.functions, self.timeline)
        self.source.describe_functions = lambda: self.front_door.describe(self.api_url)
        self._front_door_server: FrontDoorServer | None = None
        self.api_port: int | None = None
        self._ctx: EngineContext | None = None
        self.port: int | None = None
        self._started = False

    # ------------------------------------------------------------------------------------------- lifecycle
    async def start(self) -> None:
        if self._started:
            raise RuntimeError("Emulator.start() was already awaited")
        if self.config.state_dir is not None:
            self.config.state_dir.mkdir(parents=True, exist_ok=True)
        # Runtimes installed and dependencies built before anything listens; a function that cannot be built is
        # not served.
        functions = await prepare_all(self.config.functions)
        self.freezer = create_freezer(self.config.freezer)
        await self._runtime_server.start()
        self._ctx = EngineContext(
            freezer=self.freezer,
            runtime_server=self._runtime_server,
            sink=self.sink,
            timeline=self.timeline,
            account_concurrency=self.config.account_concurrency,
            count_environments=lambda: sum(pool.live_count() for pool in self.functions.values()),
            memory=MemoryLimiter.discover(),
        )
        sock = socket.socket(socket.AF_INET6 if ":" in self.config.host else socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((self.config.host, self.config.port))
        except OSError as exc:
            sock.close()
            await self._cleanup()
            raise ConfigError(listen_error(self.config.host, self.config.port, exc)) from None
        self.port = sock.getsockname()[1]
        self._ctx.endpoint_url = self.endpoint_url
        try:
            await self.events.prepare()
            for function in functions:
                self.add_function(function)
            await self.events.start()
        except BaseException:
            sock.close()
            await self._cleanup()
            raise
        for event in load_pending(self.config.state_dir):
            if event.function in self.queues:
                self.queues[event.function].submit(event)
            else:
                log.warning("kept asynchronous event %s names unknown function %s", event.request_id, event.function)
        control = ControlPlane(self.functions, self.source.resolve, self.config.account_concurrency)
        self._invoke_api = InvokeApiServer(self.source, control, limits=self.config.http_limits())
        add_event_source_routes(self._invoke_api.router, self.events)
        add_clock_routes(self._invoke_api.router, VirtualClocks(self.functions))
        await self._invoke_api.listen(sock)
        if self.config.api_port is not None:
            await self._start_front_door(self.config.api_port)
        if self.reload:
            from .reload import CodeWatcher  # watchfiles loads only when serve watches

            self.watcher = CodeWatcher(self.functions, self.timeline)
            self.watcher.start()
        self._started = True
        for pool in self.functions.values():  # once serving: made on the spawner threads, no request waits for them
            pool.make_standby()
        if self.config.host not in ("127.0.0.1", "::1", "localhost"):
            log.warning(
                "the Invoke API listens on %s, reachable from other machines: anyone who reaches it runs your "
                "functions",
                self.config.host,
            )

    @property
    def endpoint_url(self) -> str:
        if self.port is None:
            raise RuntimeError("Emulator.start() must be awaited before endpoint_url is known")
        host = self.config.host if self.config.host not in ("0.0.0.0", "::") else "127.0.0.1"
        return f"http://{host}:{self.port}"

    async def _start_front_door(self, port: int) -> None:
        sock = socket.socket(socket.AF_INET6 if ":" in self.config.host else socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((self.config.host, port))
        except OSError as exc:
            sock.close()
            await self._cleanup()
            raise ConfigError(
                f"cannot serve the HTTP front door on {self.config.host}:{port}: {exc.strerror} "
                "(choose another --api-port, or 0 for any free port)"
            ) from None
        self.api_port = sock.getsockname()[1]
        self._front_door_server = FrontDoorServer(self.front_door, self.config.http_limits())
        await self._front_door_server.listen(sock)

    @property
    def api_url(self) -> str | None:
        """The front door's base URL (API routes at its root), or None when it is not served."""
        if self.api_port is None:
            return None
        host = self.config.host if self.config.host not in ("0.0.0.0", "::") else "127.0.0.1"
        return f"http://{host}:{self.api_port}"

    def function_url(self, name: str) -> str:
        """The base URL of a function's function URL (``http://<name>.lambda-url.localhost:<api-port>/``)."""
        if self.api_port is None:
            raise RuntimeError("the front door is not served: set api_port (0 for any free port)")
        return f"http://{name.lower()}.lambda-url.localhost:{self.api_port}/"

    def add_function(self, config: FunctionConfig) -> FunctionPool:
        if self._ctx is None:
            raise RuntimeError("Emulator.start() must be awaited before add_function()")
        if config.name in self.functions:
            raise ConfigError(f"function {config.name} is already defined")
        self.front_door.check(config)  # a route another function serves is refused now, not on a request
        pool = FunctionPool(self.events.function_config(config), self._ctx)
        self.functions[config.name] = pool
        queue = AsyncQueue(pool, self.failures, self.timeline)
        self.queues[config.name] = queue
        queue.start()
        pool.check()
        pool.prewarm()
        if self._started:  # a function added to a running emulator (the harness, the pytest plugin)
            pool.make_standby()
        return pool

    def keep_spare(self) -> None:
        """Park a process for the next function added (``add_function`` on a running emulator): its standby is then
        made of it at once, its cgroups joined already. For an emulator started before its functions are known (the
        pytest plugin's next test's); ``serve`` knows its functions and makes their standbys once serving."""
        if self._ctx is None:
            raise RuntimeError("Emulator.start() must be awaited before keep_spare()")
        if self._ctx.spare is None:
            self._ctx.spare = Spare(self._ctx.freezer, self._ctx.memory)

    async def spare_pid(self) -> int | None:
        """The spare process's (``keep_spare``), once parked; None when there is none (or it was taken)."""
        spare = self._ctx.spare if self._ctx is not None else None
        return await spare.pid() if spare is not None else None

    async def remove_function(self, name: str) -> None:
        pool = self.functions.pop(name)
        save_pending(self.config.state_dir, await self.queues.pop(name).close())
        await pool.close()

    async def stop(self) -> None:
        """Stop serving; kill every environment and remove every cgroup. Idempotent."""
        await self._cleanup()
        self._started = False

    async def _cleanup(self) -> None:
        if self.watcher is not None:
            await self.watcher.stop()
            self.watcher = None
        if self._front_door_server is not None:
            await self._front_door_server.close(grace_s=1.0)
            self._front_door_server = None
        if self._invoke_api is not None:
            await self._invoke_api.close(grace_s=1.0)
            self._invoke_api = None
        await self.events.close()  # no new batches or firings; batches under way finish
        # Attempts under way finish; what was never delivered is reported and kept.
        left = await asyncio.gather(*(queue.close() for queue in self.queues.values()))
        save_pending(self.config.state_dir, [event for events in left for event in events])
        await asyncio.gather(*(pool.close() for pool in self.functions.values()))
        if self._ctx is not None and (spare := self._ctx.take_spare()) is not None:
            await spare.discard()
        await self._runtime_server.close()
        if self.freezer is not None:
            self.freezer.close()
        if self._ctx is not None and self._ctx.memory is not None:
            self._ctx.memory.close()

    # --------------------------------------------------------------------------- the Invoke API's engine side
    def resolve(self, name: str, qualifier: str | None = None) -> FunctionPool:
        """A function by name, partial ARN (``123456789012:function:name``) or ARN, with an optional qualifier."""
        return self.source.resolve(name, qualifier)

    async def invoke(self, request: InvokeRequest) -> InvokeResult:
        return await self.source.invoke(request)

    async def wait_for(self, predicate: Callable[[], bool], timeout_s: float = 30.0) -> None:
        """Until ``predicate()`` holds, checked after every timeline event (state change, async delivery, ...)."""
        if predicate():
            return
        done: asyncio.Future[None] = asyncio.get_running_loop().create_future()

        def check(_event: object) -> None:
            if not done.done() and predicate():
                done.set_result(None)

        self.timeline.listeners.append(check)
        try:
            async with asyncio.timeout(timeout_s):
                await done
        finally:
            self.timeline.listeners.remove(check)

    def environments(self) -> Sequence[Mapping[str, object]]:
        return self.source.environments()

    def async_status(self) -> Mapping[str, object]:
        return self.source.async_status()

"""The emulator as a whole: the engine (the freezer, the Runtime API server, a pool per function) put together
with the sources that invoke it (the Invoke API, asynchronous queues); what the CLI, the harness and tests start.

Lifecycle: ``await start()`` → serve → ``await stop()`` (every environment killed, every cgroup removed).
"""

from __future__ import annotations

import asyncio
import logging
import socket
from collections.abc import Callable, Mapping, Sequence

from runtime_api import InvokeApiServer, InvokeRequest, InvokeResult, RuntimeApiServer
from runtime_api.event_sources import add_routes as add_event_source_routes

from .config.settings import FunctionConfig, ServerConfig
from .engine.context import EngineContext
from .engine.freezer import FreezerBackend, create_freezer
from .engine.logs import LogSink, StreamSink
from .engine.memory_limit import MemoryLimiter
from .engine.pool import FunctionPool
from .engine.timeline import Timeline
from .errors import ConfigError
from .sources.async_invoke import AsyncQueue, FailureRecord, load_pending, save_pending
from .sources.event_sources import EventSources
from .sources.invoke_api import InvokeApiSource

log = logging.getLogger("lambda_freeze")


class Emulator:
    def __init__(self, config: ServerConfig, *, sink: LogSink | None = None, timeline: Timeline | None = None):
        self.config = config
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
        self._runtime_server = RuntimeApiServer()
        self._invoke_api: InvokeApiServer | None = None
        self._ctx: EngineContext | None = None
        self.port: int | None = None
        self._started = False

    # ------------------------------------------------------------------------------------------- lifecycle
    async def start(self) -> None:
        if self._started:
            raise RuntimeError("Emulator.start() was already awaited")
        if self.config.state_dir is not None:
            self.config.state_dir.mkdir(parents=True, exist_ok=True)
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
            raise ConfigError(
                f"cannot listen on {self.config.host}:{self.config.port}: {exc.strerror} "
                "(choose another --port, or 0 for any free port)"
            ) from None
        self.port = sock.getsockname()[1]
        self._ctx.endpoint_url = self.endpoint_url
        try:
            await self.events.prepare()
            for function in self.config.functions:
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
        self._invoke_api = InvokeApiServer(self.source)
        add_event_source_routes(self._invoke_api.router, self.events)
        await self._invoke_api.listen(sock)
        self._started = True
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

    def add_function(self, config: FunctionConfig) -> FunctionPool:
        if self._ctx is None:
            raise RuntimeError("Emulator.start() must be awaited before add_function()")
        if config.name in self.functions:
            raise ConfigError(f"function {config.name} is already defined")
        pool = FunctionPool(self.events.function_config(config), self._ctx)
        self.functions[config.name] = pool
        queue = AsyncQueue(pool, self.failures, self.timeline)
        self.queues[config.name] = queue
        queue.start()
        pool.check()
        pool.prewarm()
        return pool

    async def remove_function(self, name: str) -> None:
        pool = self.functions.pop(name)
        save_pending(self.config.state_dir, await self.queues.pop(name).close())
        await pool.close()

    async def stop(self) -> None:
        """Stop serving; kill every environment and remove every cgroup. Idempotent."""
        await self._cleanup()
        self._started = False

    async def _cleanup(self) -> None:
        if self._invoke_api is not None:
            await self._invoke_api.close(grace_s=1.0)
            self._invoke_api = None
        await self.events.close()  # no new batches or firings; batches under way finish
        # Attempts under way finish; what was never delivered is reported and kept.
        left = await asyncio.gather(*(queue.close() for queue in self.queues.values()))
        save_pending(self.config.state_dir, [event for events in left for event in events])
        await asyncio.gather(*(pool.close() for pool in self.functions.values()))
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

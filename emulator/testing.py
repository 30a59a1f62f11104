"""Run an emulator in a background thread, for synchronous callers (pytest, boto3, scripts).

with EmulatorThread(ServerConfig(port=0, functions=(fn,))) as emu:
    boto3.client("lambda", endpoint_url=emu.url, ...).invoke(FunctionName=fn.name)
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import threading
from collections import defaultdict
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from .config.settings import ServerConfig
from .engine.logs import LogSink
from .server import Emulator

T = TypeVar("T")


class CollectingSink:
    """A log sink that keeps every function log line, per function, for assertions."""

    def __init__(self, echo: LogSink | None = None):
        self._lock = threading.Lock()
        self._lines: dict[str, list[str]] = defaultdict(list)
        self._echo = echo

    def __call__(self, function: str, env_id: str, line: str) -> None:
        with self._lock:
            self._lines[function].append(line)
        if self._echo is not None:
            self._echo(function, env_id, line)

    def lines(self, function: str) -> list[str]:
        with self._lock:
            return list(self._lines[function])


class EmulatorThread:
    """An ``Emulator`` on its own event loop (uvloop) in a daemon thread; ``start()`` → use → ``stop()``."""

    def __init__(
        self,
        config: ServerConfig,
        *,
        sink: LogSink | None = None,
        start_timeout_s: float = 30.0,
        reload: bool = False,
    ):
        self.config = config
        self.reload = reload  # hot reload, as `serve` does it (the pytest plugin never watches)
        self.sink = sink
        self._start_timeout_s = start_timeout_s
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._stopping: asyncio.Event | None = None
        self._ready: concurrent.futures.Future[Emulator] = concurrent.futures.Future()
        self._done: concurrent.futures.Future[None] = concurrent.futures.Future()
        self.emulator: Emulator | None = None

    def start(self) -> EmulatorThread:
        if self._thread is not None:
            raise RuntimeError("EmulatorThread.start() was already called")
        self._thread = threading.Thread(target=self._run, name="lambda-freeze", daemon=True)
        self._thread.start()
        self.emulator = self._ready.result(timeout=self._start_timeout_s)
        return self

    def _run(self) -> None:
        import uvloop

        try:
            with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
                runner.run(self._main())
        except BaseException as exc:  # a boundary: report to the caller waiting in start()/stop()
            if not self._ready.done():
                self._ready.set_exception(exc)
            if not self._done.done():
                self._done.set_exception(exc)
            return
        if not self._done.done():
            self._done.set_result(None)

    async def _main(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._stopping = asyncio.Event()
        emulator = Emulator(self.config, sink=self.sink, reload=self.reload)
        await emulator.start()
        try:
            self._ready.set_result(emulator)
            await self._stopping.wait()
        finally:
            await emulator.stop()

    @property
    def url(self) -> str:
        if self.emulator is None:
            raise RuntimeError("EmulatorThread.start() must be called first")
        return self.emulator.endpoint_url

    def call(self, fn: Callable[[Emulator], Awaitable[T]], timeout_s: float = 60.0) -> T:
        """Run ``await fn(emulator)`` on the emulator's loop and return its result."""
        if self._loop is None or self.emulator is None:
            raise RuntimeError("EmulatorThread.start() must be called first")
        emulator = self.emulator

        async def run() -> T:
            return await fn(emulator)

        return asyncio.run_coroutine_threadsafe(run(), self._loop).result(timeout_s)

    def environments(self, function: str | None = None) -> list[dict[str, Any]]:
        async def describe(emulator: Emulator) -> list[dict[str, Any]]:
            return [dict(e) for e in emulator.environments() if function is None or e["function"] == function]

        return self.call(describe)

    def wait_for(self, predicate: Callable[[Emulator], bool], timeout_s: float = 30.0) -> None:
        """Block until ``predicate(emulator)`` holds (checked on the loop after every timeline event)."""

        async def wait(emulator: Emulator) -> None:
            await emulator.wait_for(lambda: predicate(emulator), timeout_s)

        self.call(wait, timeout_s + 5)

    def stop(self, timeout_s: float = 30.0) -> None:
        if self._loop is None or self._stopping is None or self._done.done():
            return
        self._loop.call_soon_threadsafe(self._stopping.set)
        self._done.result(timeout=timeout_s)
        if self._thread is not None:
            self._thread.join(timeout_s)

    def __enter__(self) -> EmulatorThread:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

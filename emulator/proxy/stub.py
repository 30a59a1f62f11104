"""A toxic's place in one direction of one connection: its input queue, its output, its interrupt and its state.

A toxic only holds settings; everything that belongs to one connection (queued chunks, timers, pacing, the toxic's
own state) lives here, so one toxic serves every connection and can be swapped on a live one.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from collections.abc import Callable
from typing import Any, Protocol

from .chunk import Chunk
from .events import EventKind

log = logging.getLogger("lambda_freeze.proxy")


def _never() -> bool:
    return False


class StubConnection(Protocol):
    """What a stub asks of its connection (``Connection``) for the toxic it runs."""

    @property
    def id(self) -> str: ...

    @property
    def env_id(self) -> str: ...

    @property
    def frozen(self) -> bool: ...

    @property
    def last_activity_s(self) -> float: ...

    def emit(self, kind: EventKind, **fields: object) -> None: ...

    def segments_in(self) -> int | None: ...

    def blackhole(self, reason: str, *, toxic: str | None = None) -> None: ...

    def reset(self, reason: str, toxic: str | None = None) -> None: ...

    def close(self, reason: str, toxic: str | None = None) -> None: ...


class StubLink(Protocol):
    """What a stub asks of the direction it sits in (``ToxicLink``)."""

    @property
    def direction(self) -> str: ...

    @property
    def conn(self) -> StubConnection: ...

    def deliver(self, chunk: Chunk) -> None: ...

    def drop(self, chunk: Chunk, *, toxic: str | None, reason: str) -> None: ...


class StubEntry(Protocol):
    """The registered toxic a stub runs (``registry.ToxicEntry``): its name."""

    @property
    def name(self) -> str: ...


class PipeToxic(Protocol):
    """The settings a stub runs (``toxics.base.StreamToxic``)."""

    def new_state(self) -> Any: ...

    async def pipe(self, stub: ToxicStub) -> None: ...


class ToxicStub:
    def __init__(self, link: StubLink, entry: StubEntry | None, toxic: PipeToxic):
        self.link = link
        self.entry = entry  # None for the no-op at the head of every chain
        self.toxic = toxic
        self.state: Any = toxic.new_state()
        self.output: Callable[[Chunk], None] = link.deliver
        self.task: asyncio.Task[None] | None = None
        self._queue: deque[Chunk] = deque()
        self._queued_bytes = 0
        self._waiter: asyncio.Future[None] | None = None
        self._interrupted = False
        self._loop = asyncio.get_running_loop()

    # ------------------------------------------------------------------------------------------- what toxics see
    @property
    def name(self) -> str:
        return self.entry.name if self.entry is not None else "noop"

    @property
    def direction(self) -> str:
        return self.link.direction

    @property
    def conn_id(self) -> str:
        return self.link.conn.id

    @property
    def env_id(self) -> str:
        return self.link.conn.env_id

    @property
    def frozen(self) -> bool:
        """Whether the environment this connection belongs to is frozen right now."""
        return self.link.conn.frozen

    @property
    def interrupted(self) -> bool:
        """The chain is being re-linked: the toxic must put back what it holds (``unread``) and return."""
        return self._interrupted

    @property
    def last_activity_s(self) -> float:
        """When bytes last arrived on this connection, in either direction (``time.monotonic()``)."""
        return self.link.conn.last_activity_s

    @property
    def queued_bytes(self) -> int:
        return self._queued_bytes

    async def read(self, until_s: float | None = None) -> Chunk | None:
        """The next chunk; None when interrupted or (with ``until_s``) when that monotonic time passed first."""
        await self._wait(self._has_input, until_s)
        if self._interrupted or not self._queue:
            return None
        chunk = self._queue.popleft()
        self._queued_bytes -= len(chunk.data)
        return chunk

    def unread(self, chunk: Chunk) -> None:
        """Put a chunk back at the head of the input: it is read again after a re-link, or flushed on removal."""
        self._queue.appendleft(chunk)
        self._queued_bytes += len(chunk.data)

    def write(self, chunk: Chunk) -> None:
        self.output(chunk)

    def drop(self, chunk: Chunk, reason: str) -> None:
        """Discard a chunk (or a FIN/RST) on purpose, and say so in the event log."""
        self.link.drop(chunk, toxic=self.name, reason=reason)

    async def sleep_until(self, until_s: float) -> bool:
        """Wait for a monotonic time; False if interrupted first."""
        await self._wait(_never, until_s)
        return not self._interrupted

    async def until_thawed(self, until_s: float | None = None) -> bool:
        """Wait until the environment is not frozen; False if interrupted first (or ``until_s`` passed)."""
        await self._wait(lambda: not self.frozen, until_s)
        return not self._interrupted and not self.frozen

    def emit(self, kind: EventKind, *, nbytes: int | None = None, detail: str | None = None) -> None:
        self.link.conn.emit(kind, direction=self.direction, toxic=self.name, nbytes=nbytes, detail=detail)

    def fired(self, detail: str, *, nbytes: int | None = None) -> None:
        self.emit(EventKind.FIRED, nbytes=nbytes, detail=detail)

    def segments_in(self) -> int | None:
        """TCP segments received on both of this connection's sockets, keepalive probes included."""
        return self.link.conn.segments_in()

    # Connection-wide outcomes a toxic may cause.
    def blackhole(self, reason: str) -> None:
        """Drop the connection silently: no FIN, no RST; every later byte in both directions vanishes."""
        self.link.conn.blackhole(reason, toxic=self.name)

    def reset(self, reason: str) -> None:
        """Send a RST to both the client and the upstream, discarding anything unsent."""
        self.link.conn.reset(reason, toxic=self.name)

    def close(self, reason: str) -> None:
        """Close both sockets the way the proxy's ``close_mode`` closes them (FIN unless ``rst``)."""
        self.link.conn.close(reason, toxic=self.name)

    # ------------------------------------------------------------------------------------------ what links use
    def put(self, chunk: Chunk) -> None:
        self._queue.append(chunk)
        self._queued_bytes += len(chunk.data)
        self.wake()

    def wake(self) -> None:
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    def flush(self) -> None:
        """Pass every queued chunk to the output, in order (the toxic was removed: nothing is lost)."""
        while self._queue:
            chunk = self._queue.popleft()
            self._queued_bytes -= len(chunk.data)
            self.output(chunk)

    def start(self) -> None:
        self.task = self._loop.create_task(self._run(), name=f"proxy {self.link.conn.id} {self.direction} {self.name}")

    async def interrupt(self) -> None:
        """Stop the running toxic at its next wait and wait until it returned (its queued chunks stay queued)."""
        task = self.task
        self.task = None
        if task is None or task.done():
            return
        self._interrupted = True
        self.wake()
        try:
            # asyncio.wait, not ``await task``: cancelling the caller must not cancel the toxic mid-chunk.
            await asyncio.wait((task,))
        finally:
            self._interrupted = False

    def cancel(self) -> None:
        if self.task is not None:
            self.task.cancel()
            self.task = None

    def _has_input(self) -> bool:
        return bool(self._queue)

    async def _wait(self, ready: Callable[[], bool], until_s: float | None) -> None:
        """Until ``ready()``, an interrupt, or ``until_s``; woken by new input, interrupts and freeze changes."""
        while not (ready() or self._interrupted):
            timer = None
            if until_s is not None:
                remaining = until_s - time.monotonic()
                if remaining <= 0:
                    return
                # Re-armed on every pass: a loop may fire a timer a hair early, and a late wake-up must not hang.
                timer = self._loop.call_later(remaining, self.wake)
            self._waiter = waiter = self._loop.create_future()
            try:
                await waiter
            finally:
                self._waiter = None
                if timer is not None:
                    timer.cancel()

    async def _run(self) -> None:
        try:
            await self.toxic.pipe(self)
        except asyncio.CancelledError:
            raise
        except Exception:
            # A toxic's bug is contained to its connection: logged, and the connection is closed.
            log.exception("toxic %s failed on connection %s", self.name, self.link.conn.id)
            self._loop.call_soon(self.link.conn.close, f"toxic {self.name} failed", self.name)

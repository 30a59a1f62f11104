"""An environment's virtual clock: how far its runtime's clocks run ahead of the real ones, an offset in a small file
that the preloaded ``vclock.c`` maps and reads on every clock call.

A virtual freeze of 15 minutes lasts milliseconds: while the environment is frozen its offset grows by the gap,
and on thaw its realtime, monotonic and boottime clocks have all moved by it, so a pool's idle timer or a token's
expiry check sees the 15 minutes. Event loops that recompute their timeouts from the clock (libuv, asyncio) fire
what expired at once; a wait already blocked when the freeze began (a thread in ``time.sleep(600)``, a timed lock)
ends at its real deadline, since the kernel, not the clock the process reads, counts it.

Why not libfaketime: Debian's 0.9.10 hangs Python's timed waits (``threading.Event().wait(0.5)`` never returns,
offset or not: wolfcw/libfaketime#390, #469), and without its cache it costs microseconds per clock call.

Statically linked runtimes (Go's ``provided`` binaries) read the vDSO directly and ignore a preload: the
configuration refuses virtual time for them rather than pretend.
"""

from __future__ import annotations

import mmap
import os
import struct
import tempfile
import weakref
from collections.abc import Callable, Mapping
from pathlib import Path

from ..errors import LambdaFreezeError
from . import native
from .timeline import Timeline

SOURCE = Path(__file__).with_name("vclock.c")
_OFFSET = struct.Struct("<q")  # nanoseconds, as vclock.c reads it
_built: Path | None = None


def preload_library() -> Path:
    """The compiled preload, built once per source version with the system's C compiler (``cc``); raises
    LambdaFreezeError, saying what to install, when it cannot be built."""
    global _built
    if _built is not None and _built.is_file():
        return _built
    _built = native.build(SOURCE, ".so", ["-shared", "-fPIC"], ["-ldl"], "the virtual clock's preload")
    return _built


def _remove(path: Path) -> None:
    path.unlink(missing_ok=True)


class VirtualClock:
    """One environment's offset from real time; only ever grows, and only while the environment is frozen."""

    def __init__(self, env_id: str):
        self.library = preload_library()
        fd, name = tempfile.mkstemp(prefix=f"lambda-freeze-clock-{env_id}-", suffix=".offset")
        try:
            os.write(fd, _OFFSET.pack(0))
        finally:
            os.close(fd)
        self.path = Path(name)
        self.offset_s = 0.0
        self._offset_ns = 0
        # The file goes with the clock, whichever way the environment ends.
        self._finalizer = weakref.finalize(self, _remove, self.path)

    def environment(self, preload: str | None = None) -> dict[str, str]:
        """The runtime's variables that put it on this clock (after ``preload``, the function's own LD_PRELOAD)."""
        return {
            "LD_PRELOAD": f"{self.library}:{preload}" if preload else str(self.library),
            "LAMBDA_FREEZE_CLOCK_FILE": str(self.path),
        }

    @property
    def offset_ms(self) -> int:
        return self._offset_ns // 1_000_000

    def advance(self, seconds: float) -> None:
        """Move the runtime's clocks forward by ``seconds`` (it is frozen: it reads them on thaw)."""
        if seconds < 0:
            raise LambdaFreezeError(f"a virtual clock only moves forward, not by {seconds} s")
        self._offset_ns += round(seconds * 1e9)
        self.offset_s = self._offset_ns / 1e9
        # Through a shared mapping, one aligned 8-byte store: the page the runtime maps is this very page.
        with open(self.path, "r+b") as file, mmap.mmap(file.fileno(), _OFFSET.size) as page:
            page[: _OFFSET.size] = _OFFSET.pack(self._offset_ns)

    def close(self) -> None:
        self._finalizer()


class VirtualTime:
    """An environment's virtual time: its clock (None when the function runs in real time), and those told of each
    virtual gap while the environment is still frozen (the fault proxy ages its connections by it)."""

    def __init__(self, env_id: str, function: str, timeline: Timeline, *, enabled: bool):
        self._env_id = env_id
        self._function = function
        self._timeline = timeline
        self.clock = VirtualClock(env_id) if enabled else None
        self._listeners: list[Callable[[float], object]] = []

    @property
    def offset_s(self) -> float | None:
        return self.clock.offset_s if self.clock is not None else None

    def variables(self, env: Mapping[str, str]) -> dict[str, str]:
        """What the runtime's environment ``env`` gains: the preload and its clock file, or nothing."""
        return self.clock.environment(env.get("LD_PRELOAD")) if self.clock is not None else {}

    def deadline_ms(self, real_ms: int) -> int:
        """Lambda-Runtime-Deadline-Ms on the runtime's clock, so the remaining time it computes is the real one."""
        return real_ms + (self.clock.offset_ms if self.clock is not None else 0)

    def add_listener(self, listener: Callable[[float], object]) -> None:
        self._listeners.append(listener)

    def advance(self, seconds: float) -> None:
        """Move the frozen runtime's clocks forward by ``seconds``, record the gap, tell the listeners."""
        if self.clock is None:
            raise LambdaFreezeError(
                f"function {self._function} runs in real time: give it virtual_time=True to freeze it virtually"
            )
        self.clock.advance(seconds)
        self._timeline.record(
            "virtual_gap", self._env_id, function=self._function, gap_s=seconds, offset_s=self.clock.offset_s
        )
        for listener in list(self._listeners):
            listener(seconds)

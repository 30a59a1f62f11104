"""An environment's virtual clock: how far its runtime's clocks run ahead of the real ones, kept in a file that
libfaketime, preloaded into the runtime, reads on every clock call.

A virtual freeze of 15 minutes lasts milliseconds: while the environment is frozen its offset grows by the gap,
and on thaw its realtime, monotonic and boottime clocks have all moved by it, so a pool's idle timer or a token's
expiry check sees the 15 minutes. Event loops that recompute their timeouts from the clock (libuv, asyncio) fire
what expired at once; a thread already blocked in a relative sleep (``time.sleep(600)``) sleeps its real
remaining time, since the kernel, not the clock the process reads, counts that sleep.

Statically linked runtimes (Go's ``provided`` binaries) read the vDSO directly and ignore a preload: the
configuration refuses virtual time for them rather than pretend.
"""

from __future__ import annotations

import os
import tempfile
import time
import weakref
from pathlib import Path

from ..errors import LambdaFreezeError

# Debian's and Ubuntu's libfaketime (apt-get install libfaketime), then a build installed under /usr/local.
LIBFAKETIME_PATHS = (
    Path("/usr/lib/x86_64-linux-gnu/faketime/libfaketime.so.1"),
    Path("/usr/lib/aarch64-linux-gnu/faketime/libfaketime.so.1"),
    Path("/usr/local/lib/faketime/libfaketime.so.1"),
)


def libfaketime() -> Path:
    """The preload library; raises LambdaFreezeError, naming the package to install, when it is missing."""
    override = os.environ.get("LAMBDA_FREEZE_LIBFAKETIME")
    candidates = (Path(override),) if override else LIBFAKETIME_PATHS
    for path in candidates:
        if path.is_file():
            return path
    raise LambdaFreezeError(
        "virtual time needs libfaketime: install it (Debian, Ubuntu: apt-get install libfaketime) or name the "
        "library in LAMBDA_FREEZE_LIBFAKETIME; looked in " + ", ".join(str(p) for p in candidates)
    )


def _remove(path: Path) -> None:
    path.unlink(missing_ok=True)


class VirtualClock:
    """One environment's offset from real time, in seconds; only ever grows, and only while frozen."""

    def __init__(self, env_id: str):
        self.library = libfaketime()
        fd, name = tempfile.mkstemp(prefix=f"lambda-freeze-clock-{env_id}-", suffix=".offset")
        os.close(fd)
        self.path = Path(name)
        self.offset_s = 0.0
        self._write()
        # The file goes with the clock, whichever way the environment ends.
        self._finalizer = weakref.finalize(self, _remove, self.path)

    def environment(self) -> dict[str, str]:
        """The runtime's variables that put it on this clock.

        No cache (``FAKETIME_NO_CACHE``): with libfaketime's default cache of a few seconds, the first clock calls
        after a thaw could still read the old offset, and the expired timers would not fire with the new event."""
        return {
            "LD_PRELOAD": str(self.library),
            "FAKETIME_TIMESTAMP_FILE": str(self.path),
            "FAKETIME_NO_CACHE": "1",
        }

    @property
    def offset_ms(self) -> int:
        return int(self.offset_s * 1000)

    def now_s(self) -> float:
        """The runtime's wall clock, in seconds since the epoch."""
        return time.time() + self.offset_s

    def advance(self, seconds: float) -> None:
        """Move the runtime's clocks forward by ``seconds`` (the environment is frozen: it reads them on thaw)."""
        if seconds < 0:
            raise LambdaFreezeError(f"a virtual clock only moves forward, not by {seconds} s")
        self.offset_s += seconds
        self._write()

    def _write(self) -> None:
        # Written beside and renamed over: a runtime reading the file mid-write must see the old or the new
        # offset, never an empty file (libfaketime would read that as no offset at all).
        spare = self.path.with_suffix(".next")
        spare.write_text(f"+{self.offset_s:.6f}\n")
        os.replace(spare, self.path)

    def close(self) -> None:
        self._finalizer()

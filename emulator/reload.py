"""Hot reload for ``serve``: watch each function's code directory and, when files change, retire its environments
(idle ones at once, busy ones when their invocation ends) so that the next invocation cold-starts on the new code.

Changes are batched by ``watchfiles`` (a burst such as ``npm install`` writing thousands of files under
``node_modules/`` arrives as a few batches, each one reload); byte-code caches and editors' swap files are ignored,
since they change without the code changing.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Iterable, Mapping
from pathlib import Path

import watchfiles

from .engine.pool import FunctionPool
from .engine.timeline import Timeline

log = logging.getLogger("lambda_freeze.reload")

# Batching: a batch ends once nothing changed for STEP_MS, or after DEBOUNCE_MS at most.
STEP_MS = 15
DEBOUNCE_MS = 1600
QUIET_S = 2.0  # a batch that comes this long after the previous one begins a new burst
_IGNORED_DIRS = frozenset({"__pycache__", ".git", ".hg", ".svn", ".mypy_cache", ".pytest_cache", ".ruff_cache"})
_IGNORED_SUFFIXES = (".pyc", ".pyo", ".swp", ".swx", ".swo", "~", ".tmp")


def _relevant(change: watchfiles.Change, path: str) -> bool:
    parts = Path(path).parts
    if _IGNORED_DIRS.intersection(parts):
        return False
    name = parts[-1] if parts else ""
    return not (name.endswith(_IGNORED_SUFFIXES) or name.startswith(".#") or name == "4913")  # vim's probe file


def watched_dirs(pool: FunctionPool) -> list[Path]:
    """What a function's code is made of, as directories to watch: its code and its layers."""
    return [pool.config.code_dir.resolve(), *(layer.resolve() for layer in pool.config.layers)]


def owners(changed: Iterable[str], functions: Mapping[str, FunctionPool]) -> dict[str, list[Path]]:
    """Per function, the changed files under one of its watched directories (several functions may share one)."""
    found: dict[str, list[Path]] = {}
    for name, pool in functions.items():
        roots = watched_dirs(pool)
        for path in map(Path, changed):
            for root in roots:
                if path == root or root in path.parents:
                    found.setdefault(name, []).append(path.relative_to(root))
                    break
    return found


def describe(paths: list[Path], limit: int = 5) -> str:
    shown = ", ".join(str(path) for path in sorted(paths)[:limit])
    return shown + (f" and {len(paths) - limit} more" if len(paths) > limit else "")


def drop_stale_bytecode(changed: Iterable[str]) -> None:
    """Remove the cached byte code of changed Python files. Python trusts a ``.pyc`` whose recorded source mtime
    (whole seconds) and size match, so an edit of the same size within the same second would run the old code."""
    for path in map(Path, changed):
        if path.suffix == ".py":
            for cached in (path.parent / "__pycache__").glob(f"{path.stem}.*.pyc"):
                with contextlib.suppress(OSError):
                    cached.unlink()


class CodeWatcher:
    """Lifecycle: ``start()`` → runs on its own task → ``await stop()``."""

    def __init__(self, functions: Mapping[str, FunctionPool], timeline: Timeline | None = None):
        self._functions = functions
        self._timeline = timeline
        self._stop = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self.ready = asyncio.Event()  # the watcher has its watches in place
        self.reloads = 0  # announced reloads: the first batch of a burst, or one that retired an environment
        self._announced: dict[str, float] = {}  # per function, when a batch last came (monotonic)

    def start(self) -> None:
        if self._task is not None:
            raise RuntimeError("CodeWatcher.start() was already called")
        self._task = asyncio.get_running_loop().create_task(self._run(), name="lambda-freeze code watcher")

    async def stop(self) -> None:
        self._stop.set()
        if self._task is not None:
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    async def _run(self) -> None:
        dirs = sorted({d for pool in self._functions.values() for d in watched_dirs(pool)})
        if not dirs:
            return
        log.info("watching %s for changes (hot reload; --no-reload turns it off)", ", ".join(map(str, dirs)))
        watch = watchfiles.awatch(
            *dirs,
            watch_filter=_relevant,
            debounce=DEBOUNCE_MS,
            step=STEP_MS,
            stop_event=self._stop,
            yield_on_timeout=True,
            rust_timeout=200,
        )
        try:
            async for changes in watch:
                # The first (possibly empty) batch comes once the watches are set: from then on, none is missed.
                self.ready.set()
                if changes:
                    self.on_changes({path for _, path in changes})
        except Exception as exc:  # a boundary: serving goes on without reloading (e.g. out of inotify watches)
            log.warning("hot reload is off: watching the code failed: %s (restart serve to pick up changes)", exc)

    def on_changes(self, changed: set[str]) -> None:
        drop_stale_bytecode(changed)
        for name, paths in owners(changed, self._functions).items():
            pool = self._functions.get(name)
            if pool is None:
                continue
            retired = pool.retire_all("code changed")
            if self._timeline is not None:
                self._timeline.record("reload", name, files=[str(path) for path in paths], retired=retired)
            now = time.monotonic()
            # The batches of one burst (an install) retire the environments once: later ones find none left, and
            # are not announced again unless the burst is over.
            if retired or now - self._announced.get(name, -QUIET_S) >= QUIET_S:
                self.reloads += 1
                log.info(
                    "%s: code changed (%s): %d environment(s) retired; the next invocation starts on the new code",
                    name,
                    describe(paths),
                    retired,
                )
            self._announced[name] = now

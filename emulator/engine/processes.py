"""An environment's processes: its runtime and its external extensions, each started in the environment's cgroups
(the freezer's and the memory limit's), their output as log lines, the runtime's exit, and their end when the
environment stops. The runtime may come from a standby: a process parked in those cgroups before its exec."""

from __future__ import annotations

import asyncio
import logging
import os
import signal
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

from .freezer import FreezerGroup
from .lambda_paths import Mounts
from .logs import LineSplitter
from .memory_limit import MemoryGroup
from .process import _SPAWNER, Parked, RuntimeProcess, describe_exit, park_by_vfork

log = logging.getLogger("lambda_freeze.environment")

STOP_TIMEOUT_S = 5.0  # how long a SIGKILLed runtime may take to go (a task in uninterruptible sleep)


class EnvironmentProcesses:
    def __init__(self, env_id: str, cwd: Path, on_line: Callable[[str], None]):
        self._env_id = env_id
        self._cwd = cwd
        self._lines = LineSplitter(on_line)
        self._runtime: RuntimeProcess | None = None  # None until started, and when its start failed
        self.mounts: Mounts | None = None  # Lambda's /var/task and /opt, where the kernel allows them
        self.parked: Parked | None = None  # a standby's process, adopted with its cgroups, until the runtime starts
        self._extensions: dict[str, RuntimeProcess] = {}
        self.memory: MemoryGroup | None = None  # the memory size as a limit, where it can be enforced
        self.runtime_started = False  # the runtime has exec'd (its memory can be measured)
        self.exit_status: str | None = None
        self.exited = asyncio.Event()  # the runtime is gone (or never started)
        self.progress = asyncio.Event()  # an extension or a process moved: the SHUTDOWN phase looks again

    @property
    def pid(self) -> int | None:
        return self._runtime.pid if self._runtime else None

    @property
    def runtime_gone(self) -> bool:
        return self._runtime is None or self._runtime.returncode is not None

    def attach_paths(self, group: FreezerGroup) -> tuple[Path, ...]:
        """The cgroups a process of this environment joins before it execs: the freezer's and the memory one."""
        memory = (self.memory.attach_path,) if self.memory is not None else ()
        return (*group.attach_paths, *memory)

    async def start_runtime(
        self, argv: Sequence[str], env: Mapping[str, str], group: FreezerGroup, on_exit: Callable[[int], None]
    ) -> int:
        """Launch the runtime (it has exec'd when this returns, or execs next in the adopted parked process); raises
        OSError when it cannot be executed."""
        parked, self.parked = self.parked, None
        # Checked where the emulator sees it: a bootstrap at /var/task/bootstrap is the code directory's.
        program = self.mounts.real(argv[0]) if self.mounts is not None else argv[0]
        runnable = Parked.can_run([program, *argv[1:]], env)
        if parked is not None and not runnable:
            parked.discard()  # the ordinary start below says why, as Lambda would
            parked = None
        attach_paths = self.attach_paths(group)
        if parked is None and runnable:  # no standby: parked and released at once all the same (``_park_now``)
            parked = await self._park_now(attach_paths)
        self._runtime = RuntimeProcess(
            argv,
            env=env,
            cwd=self._cwd,
            attach_paths=attach_paths,
            on_output=self._lines.feed,
            on_exit=on_exit,
            mounts=self.mounts.child_setup if self.mounts is not None else None,
            parked=parked,
        )
        try:
            pid = await self._runtime.start()
        except OSError:
            self._runtime = None
            self.exited.set()  # nothing to wait for when stopping
            raise
        self.runtime_started = True
        return pid

    async def _park_now(self, attach_paths: Sequence[Path]) -> Parked | None:
        """A process parked in ``attach_paths`` for the runtime to exec in at once: a park is a vfork (park.c,
        setpriv), where the ordinary start forks the whole emulator for its preexec_fn (3-15 ms, the GIL held). None
        where a park would need a preexec_fn too, or failed (the ordinary start then says why)."""
        making = asyncio.get_running_loop().run_in_executor(_SPAWNER, park_by_vfork, self._cwd, attach_paths,
                                                            self.mounts)
        try:
            return await asyncio.shield(making)
        except asyncio.CancelledError:
            making.add_done_callback(_discard_parked)
            raise
        except OSError:
            return None

    async def start_extension(
        self, path: Path, env: Mapping[str, str], group: FreezerGroup, on_exit: Callable[[int], None]
    ) -> int:
        """Launch an external extension; raises OSError when it cannot be executed."""
        process = RuntimeProcess(
            [str(path)],
            env=env,
            cwd=self._cwd,
            attach_paths=self.attach_paths(group),
            on_output=self._lines.feed,
            on_exit=on_exit,
            mounts=self.mounts.child_setup if self.mounts is not None else None,
        )
        pid = await process.start()
        self._extensions[path.name] = process
        return pid

    def runtime_exited(self, returncode: int) -> str:
        """The runtime process is gone: its exit as Lambda words it (``exit status 1``, ``signal: killed``)."""
        self.exit_status = describe_exit(returncode)
        self.exited.set()
        self.progress.set()
        self._lines.flush()
        return self.exit_status

    def oom_killed(self) -> bool:
        return self.memory is not None and self.memory.oom_killed()

    def drain(self) -> None:
        """Every byte the runtime has written so far, out as log lines (a partial last line too)."""
        if self._runtime is not None:
            self._runtime.drain_output()
        self._lines.flush()

    def terminate_runtime(self) -> None:
        """SIGTERM, as Lambda's SHUTDOWN phase begins."""
        runtime = self._runtime
        if runtime is not None and runtime.pid is not None and runtime.returncode is None:
            os.kill(runtime.pid, signal.SIGTERM)

    async def release(self) -> None:
        """Wait until every process, killed with its group, is gone; then stop reading them."""
        parked, self.parked = self.parked, None
        if parked is not None:  # adopted, never started: nothing of the function ran in it
            await asyncio.get_running_loop().run_in_executor(None, parked.discard)
        for process in self._extensions.values():
            if process.returncode is None:
                try:
                    async with asyncio.timeout(STOP_TIMEOUT_S):
                        await process.exited.wait()
                except TimeoutError:
                    log.error("%s: extension pid %s did not die", self._env_id, process.pid)
            process.close()
        runtime = self._runtime
        if runtime is not None:
            if runtime.returncode is None:
                try:
                    async with asyncio.timeout(STOP_TIMEOUT_S):
                        await self.exited.wait()
                except TimeoutError:
                    log.error(
                        "%s: runtime pid %s did not die within %.0f s of SIGKILL",
                        self._env_id,
                        self.pid,
                        STOP_TIMEOUT_S,
                    )
            runtime.close()

    async def remove_memory_group(self) -> None:
        if self.memory is not None:
            await self.memory.remove()

    def close_lines(self) -> None:
        """The last partial line out; nothing is emitted after this."""
        self._lines.close()


def _discard_parked(making: asyncio.Future[Parked | None]) -> None:
    """A park whose start was cancelled while it ran on: nobody will release it."""
    if not making.cancelled() and making.exception() is None and (parked := making.result()) is not None:
        parked.discard()

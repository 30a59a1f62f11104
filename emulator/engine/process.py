"""The runtime process: spawned in its own process group, placed in its cgroup before it execs, dying with the
emulator (parent-death signal), its stdout and stderr read from one pipe, its exit seen through a pidfd.

fork and exec happen on spawner threads: ``Popen`` returns only once the child has exec'd, which on a busy machine
takes tens to hundreds of milliseconds, and the event loop (deadlines, every other environment's traffic) must not
wait with it. The spawner threads live as long as the process, since the parent-death signal follows the thread
that forked.

A process may also be made ahead of need (``park``): forked, joined to its cgroups and mount namespace, then held
in ``/bin/sh`` reading its stdin, where nothing of the function runs. ``RuntimeProcess.start`` with that
``Parked`` writes it the runtime's environment and command line, and the shell execs the runtime in its place.
"""

from __future__ import annotations

import asyncio
import ctypes
import errno
import functools
import logging
import os
import select
import shlex
import shutil
import signal
import subprocess
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from ..errors import LambdaFreezeError
from . import native
from .lambda_paths import Mounts

log = logging.getLogger("lambda_freeze.process")
_libc = ctypes.CDLL(None, use_errno=True)
_PR_SET_PDEATHSIG = 1
_READ_CHUNK = 64 * 1024
_READ_PER_WAKEUP = 16  # chunks read per readiness callback, so a flooding runtime cannot starve the loop
_SPAWNER = ThreadPoolExecutor(max_workers=4, thread_name_prefix="lambda-freeze-spawn")
# The parked shell sources its stdin: it blocks in read(2) until the runtime's script is written, and on EOF alone
# (a standby let go) it exits having run nothing.
_TRAMPOLINE = ("/bin/sh", "-c", ". /dev/stdin")
# The same shell joining its cgroups itself (``$$`` is the shell, later the runtime), saying so, then waiting: with
# no preexec_fn, Popen can use vfork instead of fork, whose copy of the emulator's page tables took 3-15 ms.
_JOIN_THEN_PARK = 'for f; do echo $$ > "$f" || exit 1; done; echo parked; . /dev/stdin'
_PARKED = b"parked\n"
_SAY_THEN_PARK = ("/bin/sh", "-c", "echo parked; . /dev/stdin")  # park.c's program: the shell says it waits
_PARK_SOURCE = Path(__file__).with_name("park.c")


def describe_exit(returncode: int) -> str:
    """How Lambda words a runtime's end: ``exit status 1``, ``signal: killed``, ..."""
    if returncode >= 0:
        return f"exit status {returncode}"
    try:
        name = signal.strsignal(-returncode) or f"signal {-returncode}"
    except ValueError:
        name = f"signal {-returncode}"
    return f"signal: {name.lower()}"


def pidfd_exited_within(pidfd: int, timeout_s: float) -> bool:
    """Whether the process behind ``pidfd`` has ended, or ends within ``timeout_s``: the pidfd turns readable the
    moment it does, so no polling in naps."""
    poll = select.poll()
    poll.register(pidfd, select.POLLIN)
    return bool(poll.poll(timeout_s * 1000))


def exited_within(pid: int, timeout_s: float) -> bool:
    """``pidfd_exited_within`` for a pid (a process already reaped counts as ended). Raises OSError where the kernel
    has no pidfds (before 5.3)."""
    try:
        pidfd = os.pidfd_open(pid)
    except ProcessLookupError:
        return True
    try:
        return pidfd_exited_within(pidfd, timeout_s)
    finally:
        os.close(pidfd)


def _child_setup(attach_paths: Sequence[bytes], parent_pid: int, mounts: Callable[[], None] | None = None
                 ) -> Callable[[], None]:
    def setup() -> None:  # runs in the child between fork and exec: keep it to plain syscalls
        _libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
        if os.getppid() != parent_pid:  # the emulator died before prctl took effect
            os._exit(1)
        for path in attach_paths:  # "0" is the writing process; its future children follow it
            fd = os.open(path, os.O_WRONLY)
            os.write(fd, b"0")
            os.close(fd)
        if mounts is not None:  # Lambda's /var/task and /opt (lambda_paths.py)
            mounts()

    return setup


def _kill_spawned(spawn: asyncio.Future[tuple[subprocess.Popen[bytes], int]]) -> None:
    """A start cancelled while its spawn ran on: the process nobody will watch is killed at once."""
    if spawn.cancelled() or spawn.exception() is not None:
        return
    popen, read_fd = spawn.result()
    os.killpg(popen.pid, signal.SIGKILL)
    popen.wait()
    os.close(read_fd)


@dataclass
class Parked:
    """A process parked before its exec (``park``): in its cgroups, its output on ``read_fd``, waiting for its
    script on ``script_fd``."""

    popen: subprocess.Popen[bytes]
    read_fd: int
    script_fd: int

    @property
    def pid(self) -> int:
        return self.popen.pid

    @staticmethod
    def can_run(argv: Sequence[str], env: Mapping[str, str]) -> bool:
        """Whether the kernel will exec ``argv[0]``: found, executable, an ELF binary or a script whose interpreter
        exists. Else the ordinary start raises the OSError a caller expects (Runtime.InvalidEntrypoint), where the
        shell would say it in a line of output or run a file of no executable format as a script itself."""
        program = shutil.which(argv[0], path=env.get("PATH", os.defpath))
        if program is None:
            return False
        try:
            with open(program, "rb") as file:
                head = file.read(256)
        except OSError:
            return False
        if head.startswith(b"\x7fELF"):
            return True
        if not head.startswith(b"#!"):
            return False
        words = head[2:].split(b"\n", 1)[0].split()
        return bool(words) and os.access(words[0], os.X_OK)

    def release(self, argv: Sequence[str], env: Mapping[str, str], cwd: Path | None = None) -> None:
        """Exec the runtime in the parked process, with exactly ``env`` (the shell's own PWD removed), in ``cwd``
        when given (the directory by that name now, should it have been replaced since the park)."""
        lines = [f"cd -- {shlex.quote(str(cwd))} || exit 126"] if cwd is not None else []
        lines += [f"unset {name}" for name in ("PWD", "OLDPWD") if name not in env]  # the shell's own, not Lambda's
        lines += [f"export {key}={shlex.quote(value)}" for key, value in env.items()]
        lines.append("exec " + " ".join(map(shlex.quote, argv)) + " </dev/null")
        fd, self.script_fd = self.script_fd, -1
        try:
            os.write(fd, ("\n".join(lines) + "\n").encode())  # far below a pipe's 64 KiB: one write, no blocking
        finally:
            os.close(fd)

    def enter(self, mounts: Mounts) -> None:
        """Give a process parked without mounts (a spare) its mount namespace with Lambda's paths: its shell execs
        park.c, which makes the mounts and execs a waiting shell again; blocking until that one waits (for a
        spawner thread). Raises OSError when park.c could not be built or a mount was refused (the process is then
        gone: ``discard`` it)."""
        helper = _park_helper()
        if helper is None:
            raise OSError(errno.ENOEXEC, "no parking helper to make Lambda's paths with")
        argv = [helper, str(os.getpid()), *mounts.helper_arguments(), "--", *_SAY_THEN_PARK]
        os.write(self.script_fd, ("exec " + " ".join(map(shlex.quote, argv)) + "\n").encode())
        self.wait_parked()

    def wait_parked(self) -> None:
        """Until the parked shell says it waits; OSError with what it said instead if it ended."""
        said = b""
        while not said.endswith(_PARKED):
            chunk = os.read(self.read_fd, 256)
            said += chunk
            if not chunk or len(said) > 4096:  # it ended: a cgroup it could not join, a mount refused, and why
                raise OSError(f"the parked process could not be set up: {said.decode(errors='replace')}")

    def discard(self) -> None:
        """Never used: killed (the shell alone runs in it), reaped, its pipes closed."""
        if self.script_fd >= 0:
            os.close(self.script_fd)
            self.script_fd = -1
        try:
            os.killpg(self.popen.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        self.popen.wait()
        if self.read_fd >= 0:
            os.close(self.read_fd)
            self.read_fd = -1


@functools.cache
def _setpriv() -> str | None:
    """util-linux's setpriv, which gives the shell its parent-death signal without a preexec_fn."""
    return shutil.which("setpriv")


@functools.cache
def _park_helper() -> str | None:
    """The compiled ``park.c``, which makes a parked process's mount namespace without a preexec_fn; None (and one
    log line) where it cannot be built: parking then forks the emulator with a preexec_fn, as before."""
    try:
        return str(native.build(_PARK_SOURCE, "", [], [], "the parking helper"))
    except (LambdaFreezeError, OSError) as exc:
        log.info("parked processes with Lambda's paths are forked with a preexec_fn (%s)", exc)
        return None


def _park_command(attach_paths: Sequence[Path], mounts: Mounts | None) -> list[str] | None:
    """What makes a parked process with no preexec_fn (park.c for mounts, setpriv for cgroups alone), or None."""
    if mounts is not None:
        helper = _park_helper()
        if helper is None:
            return None
        joins = [arg for path in attach_paths for arg in ("-c", str(path))]
        return [helper, str(os.getpid()), *joins, *mounts.helper_arguments(), "--", *_SAY_THEN_PARK]
    if attach_paths and (setpriv := _setpriv()) is not None:
        return [setpriv, "--pdeathsig", "KILL", "--", "/bin/sh", "-c", _JOIN_THEN_PARK, "sh", *map(str, attach_paths)]
    return None


def park_by_vfork(cwd: Path, attach_paths: Sequence[Path], mounts: Mounts | None = None) -> Parked | None:
    """``park``, where it needs no preexec_fn; else None (the caller forks the ordinary way)."""
    if _park_command(attach_paths, mounts) is None:
        return None
    return park(cwd, attach_paths, mounts)


def park(cwd: Path, attach_paths: Sequence[Path], mounts: Mounts | None = None) -> Parked:
    """Fork a process that joins ``attach_paths`` (and ``mounts``) and waits in a shell for its runtime; blocking,
    for a spawner thread (``_SPAWNER``: the thread outlives the process, as its parent-death signal requires).

    No Python runs between fork and exec, so the fork is a vfork: without mounts the shell joins its cgroups itself
    under ``setpriv --pdeathsig KILL``; with mounts, ``park.c`` joins them and makes the mount namespace; either
    says ``parked`` before the shell waits. Where neither is at hand, the joins and mounts happen in a preexec_fn.
    Raises OSError when the process cannot be made or cannot join its cgroups."""
    argv = _park_command(attach_paths, mounts)
    script_r, script_w = os.pipe2(os.O_CLOEXEC)
    read_fd, write_fd = os.pipe2(os.O_CLOEXEC)
    try:
        if argv is not None:
            popen = subprocess.Popen(
                argv, env={}, cwd=cwd, stdin=script_r, stdout=write_fd, stderr=write_fd, process_group=0
            )
        else:
            popen = subprocess.Popen(
                _TRAMPOLINE,
                env={},
                cwd=cwd,
                stdin=script_r,
                stdout=write_fd,
                stderr=write_fd,
                process_group=0,
                preexec_fn=_child_setup(
                    [os.fsencode(p) for p in attach_paths], os.getpid(), mounts.child_setup if mounts else None
                ),
            )
    except BaseException:
        os.close(read_fd)
        os.close(script_w)
        raise
    finally:
        os.close(write_fd)
        os.close(script_r)
    parked = Parked(popen, read_fd, script_w)
    if argv is not None:
        try:
            parked.wait_parked()
        except OSError:
            parked.discard()
            raise
    return parked


class RuntimeProcess:
    """One runtime process. ``on_output`` gets raw bytes as they arrive; ``on_exit`` the return code, once."""

    def __init__(
        self,
        argv: Sequence[str],
        *,
        env: Mapping[str, str],
        cwd: Path,
        attach_paths: Sequence[Path],
        on_output: Callable[[bytes], None],
        on_exit: Callable[[int], None],
        mounts: Callable[[], None] | None = None,
        parked: Parked | None = None,
    ):
        self._parked = parked  # made ahead of need: started by releasing it
        self._argv = list(argv)
        self._mounts = mounts
        self._env = dict(env)
        self._cwd = cwd
        self._attach_paths = [os.fsencode(p) for p in attach_paths]
        self._on_output = on_output
        self._on_exit = on_exit
        self._popen: subprocess.Popen[bytes] | None = None
        self._out_fd: int | None = None
        self._pidfd: int | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self.returncode: int | None = None
        self.exited = asyncio.Event()

    @property
    def pid(self) -> int | None:
        return self._popen.pid if self._popen else None

    async def start(self) -> int:
        """Start the process (it has exec'd when this returns; a parked one execs right after); raises OSError (e.g.
        ENOENT, EACCES) when it cannot be executed."""
        self._loop = asyncio.get_running_loop()
        parked, self._parked = self._parked, None
        if parked is not None:
            try:
                parked.release(self._argv, self._env, None if self._mounts is not None else self._cwd)
                popen, read_fd = parked.popen, parked.read_fd
            except OSError:  # the parked shell is gone (killed from outside): started the ordinary way instead
                parked.discard()
                parked = None
        if parked is None:
            spawn = self._loop.run_in_executor(_SPAWNER, self._spawn)
            try:
                popen, read_fd = await asyncio.shield(spawn)
            except asyncio.CancelledError:
                spawn.add_done_callback(_kill_spawned)
                raise
        self._popen = popen
        os.set_blocking(read_fd, False)
        self._out_fd = read_fd
        self._loop.add_reader(read_fd, self._read_available, _READ_PER_WAKEUP)
        self._pidfd = os.pidfd_open(self._popen.pid)
        self._loop.add_reader(self._pidfd, self._reap)
        return self._popen.pid

    def _spawn(self) -> tuple[subprocess.Popen[bytes], int]:
        read_fd, write_fd = os.pipe2(os.O_CLOEXEC)
        try:
            popen = subprocess.Popen(
                self._argv,
                env=self._env,
                cwd=self._cwd,
                stdin=subprocess.DEVNULL,
                stdout=write_fd,
                stderr=write_fd,
                process_group=0,
                preexec_fn=_child_setup(self._attach_paths, os.getpid(), self._mounts),
            )
        except BaseException:
            os.close(read_fd)
            raise
        finally:
            os.close(write_fd)
        return popen, read_fd

    def _read_available(self, max_chunks: int) -> None:
        fd = self._out_fd
        for _ in range(max_chunks):
            if fd is None:
                return
            try:
                data = os.read(fd, _READ_CHUNK)
            except BlockingIOError:
                return
            except OSError as exc:
                if exc.errno == errno.EINTR:
                    continue
                data = b""
            if not data:  # every writer is gone
                self._close_output()
                return
            self._on_output(data)

    def drain_output(self) -> None:
        """Read everything the runtime has written so far (before a START/END line is placed)."""
        self._read_available(10_000)

    def _close_output(self) -> None:
        if self._out_fd is not None and self._loop is not None:
            self._loop.remove_reader(self._out_fd)
            os.close(self._out_fd)
            self._out_fd = None

    def _reap(self) -> None:
        assert self._popen is not None and self._loop is not None
        returncode = self._popen.poll()
        if returncode is None:
            return
        if self._pidfd is not None:
            self._loop.remove_reader(self._pidfd)
            os.close(self._pidfd)
            self._pidfd = None
        self.drain_output()
        self.returncode = returncode
        self.exited.set()
        self._on_exit(returncode)

    def close(self) -> None:
        """Stop reading; the process must already have been killed."""
        self._close_output()
        if self._pidfd is not None and self._loop is not None:
            self._loop.remove_reader(self._pidfd)
            os.close(self._pidfd)
            self._pidfd = None
        # Nothing is read or reaped any more: let go of the owner's callbacks, which point back at it, so a stopped
        # environment is freed at once instead of waiting for the cycle collector.
        self._on_output = _ignore
        self._on_exit = _ignore


def _ignore(_: object) -> None:
    pass

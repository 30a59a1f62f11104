"""A scenario's services: processes the functions talk to (a server, a fake API), started before the functions of
a run, ready when a line of their output says so or when their port accepts connections, and stopped, with their
whole process group, after the run. Their output goes to the run's timeline."""

from __future__ import annotations

import collections
import os
import random
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from typing import Any

from ..engine.process import _child_setup, describe_exit, pidfd_exited_within
from ..errors import LambdaFreezeError
from .model import ServiceSpec
from .placeholders import fill

HOST = "127.0.0.1"
STOP_GRACE_S = 5.0  # SIGTERM, then SIGKILL
OUTPUT_RECORDED = 1000  # lines of a service's output that go to the timeline
_PROBE_FIRST_S, _PROBE_MAX_S = 0.01, 0.2  # a port that does not accept yet is tried again after this, doubling


class ServiceFailed(LambdaFreezeError):
    """A service that did not start, or was not ready in time; the message carries its last lines of output."""

    error_type = "ServiceFailed"


_FIRST_PORT = 20000  # services' ports come from below the kernel's ephemeral range (32768 up, by default), which
# every port-0 listener and outgoing connection on the machine draws from: a port picked there could be taken
# again by anyone before the service binds it


def free_port() -> int:
    """A port nobody listens on now, for a service to listen on: random, below the ephemeral range."""
    low = _ephemeral_low()
    rng = random.SystemRandom()
    for _ in range(200):
        port = rng.randrange(_FIRST_PORT, max(low, _FIRST_PORT + 1000))
        with socket.socket() as probe:
            try:
                probe.bind((HOST, port))
            except OSError:
                continue
            return port
    with socket.socket() as probe:  # a crowded machine: any port the kernel gives
        probe.bind((HOST, 0))
        return int(probe.getsockname()[1])


def _ephemeral_low() -> int:
    try:
        with open("/proc/sys/net/ipv4/ip_local_port_range") as ports:
            return int(ports.read().split()[0])
    except (OSError, ValueError, IndexError):
        return 32768


def _listening_inodes(port: int) -> set[str]:
    """The socket inodes listening on ``port`` (TCP, IPv4 and IPv6), from /proc/net."""
    found = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            with open(table) as rows:
                lines = rows.read().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            fields = line.split()
            if fields[3] == "0A" and int(fields[1].rsplit(":", 1)[1], 16) == port:  # 0A: LISTEN
                found.add(fields[9])
    return found


def _group_sockets(pgid: int) -> set[str]:
    """The socket inodes the processes of a process group hold."""
    inodes = set()
    for proc in os.listdir("/proc"):
        if not proc.isdigit():
            continue
        try:
            if os.getpgid(int(proc)) != pgid:
                continue
            for fd in os.listdir(f"/proc/{proc}/fd"):
                target = os.readlink(f"/proc/{proc}/fd/{fd}")
                if target.startswith("socket:["):
                    inodes.add(target[8:-1])
        except OSError:
            continue
    return inodes


def command_problem(spec: ServiceSpec) -> str | None:
    """Why the service's command cannot be executed, or None."""
    program = spec.command[0]
    if program == "${python}":
        return None
    if "/" in program:
        path = spec.cwd / program
        if not path.is_file() or not os.access(path, os.X_OK):
            return f"service {spec.name}: {path} is not an executable file"
        return None
    if shutil.which(program) is None:
        return f"service {spec.name}: command {program!r} is not on PATH"
    return None


class RunningService:
    """One service of one run: ``start()`` (returns once it is ready) → the run → ``stop()``."""

    def __init__(self, spec: ServiceSpec, record: Callable[[str, str, dict[str, Any]], None]):
        self.spec = spec
        self.port: int | None = free_port() if spec.auto_port else None
        self._record = record  # (subject, what, detail)
        self._cond = threading.Condition()
        self._ready = False
        self._eof = False
        self._stopping = False
        self._reaping = threading.Lock()  # the reader's look at how it ended, and stop()'s reaping
        self._lines: collections.deque[str] = collections.deque(maxlen=20)
        self._proc: subprocess.Popen[bytes] | None = None
        self._pidfd: int | None = None
        self._reader: threading.Thread | None = None

    @property
    def host(self) -> str:
        return HOST

    @property
    def address(self) -> str:
        return f"{HOST}:{self.port}"

    def value(self, name: str) -> str:
        """``${python}`` and ``${port}`` in the service's own command and env."""
        return sys.executable if name == "python" else str(self.port)

    def _note(self, what: str, text: str, **detail: Any) -> None:
        self._record(self.spec.name, what, {"text": text, **detail})

    def start(self, other: Callable[[str], str]) -> None:
        """Start it and wait until it is ready; ``other`` fills the placeholders that are not its own."""
        spec = self.spec

        def value(name: str) -> str:
            return self.value(name) if name in ("port", "python") else other(name)

        argv = [fill(arg, value) for arg in spec.command]
        env = {**os.environ, **{key: fill(text, value) for key, text in spec.env.items()}}
        started = time.monotonic()
        try:
            self._proc = subprocess.Popen(
                argv, cwd=spec.cwd, env=env, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT, process_group=0, preexec_fn=_child_setup([], os.getpid()),
            )
        except OSError as exc:
            raise ServiceFailed(f"service {spec.name}: cannot start {argv[0]!r}: {exc.strerror}") from None
        self._pidfd = os.pidfd_open(self._proc.pid)
        self._note("started", f"started (pid {self._proc.pid}): {' '.join(argv)}", pid=self._proc.pid)
        self._reader = threading.Thread(target=self._read, name=f"service-{spec.name}", daemon=True)
        self._reader.start()
        try:
            self._wait_ready(started)
        except BaseException:
            self.stop()
            raise
        self._note("ready", f"ready on port {self.port} ({(time.monotonic() - started) * 1000:.0f} ms)"
                   if self.port is not None else f"ready ({(time.monotonic() - started) * 1000:.0f} ms)",
                   port=self.port)

    def _read(self) -> None:
        assert self._proc is not None and self._proc.stdout is not None
        pattern = self.spec.ready_line
        recorded = 0
        for raw in self._proc.stdout:
            line = raw.decode("utf-8", "replace").rstrip("\r\n")
            if recorded < OUTPUT_RECORDED:
                self._note("output", f"> {line}", line=line)
            elif recorded == OUTPUT_RECORDED:
                self._note("output", f"(more output than {OUTPUT_RECORDED} lines: no longer recorded)")
            recorded += 1
            with self._cond:
                self._lines.append(line)
                if not self._ready and pattern is not None and (found := pattern.search(line)):
                    if "port" in pattern.groupindex:
                        self.port = int(found["port"])
                    self._ready = True
                    self._cond.notify_all()
        with self._cond:
            self._eof = True
            self._cond.notify_all()
        if not self._stopping:
            self._note("exited", f"exited ({self._status()})")

    def _accepts(self) -> bool:
        """The service itself listens on its port (not some other process that took the port meanwhile), and
        accepts a connection."""
        assert self._proc is not None
        listening = _listening_inodes(int(self.port or 0))
        if not listening or not listening & _group_sockets(self._proc.pid):
            return False
        try:
            with socket.create_connection((HOST, int(self.port or 0)), timeout=1):
                return True
        except OSError:
            return False

    def _wait_ready(self, started: float) -> None:
        """Until the ready line came, or the port accepts a connection (tried again with a growing pause, cut
        short when the service ends)."""
        spec = self.spec
        deadline = started + spec.ready_timeout_s
        pause = _PROBE_FIRST_S
        while True:
            with self._cond:
                if self._ready:
                    return
                if self._eof:
                    raise ServiceFailed(f"service {spec.name} ended before it was ready ({self._status()})"
                                        f"{self._tail()}")
            if spec.ready_line is None and self._accepts():
                with self._cond:
                    self._ready = True
                return
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                what = (f"no line of its output matched ready_line /{spec.ready_line.pattern}/"
                        if spec.ready_line is not None else f"port {self.port} does not accept connections")
                raise ServiceFailed(f"service {spec.name} not ready after {spec.ready_timeout_s:g} s: {what}"
                                    f"{self._tail()}")
            with self._cond:
                if not (self._ready or self._eof):
                    self._cond.wait(remaining if spec.ready_line is not None else min(pause, remaining))
            pause = min(pause * 2, _PROBE_MAX_S)

    def _status(self) -> str:
        """How it ended (its output closes a moment before it can be waited for), or that it has not."""
        proc = self._proc
        assert proc is not None
        with self._reaping:
            if proc.returncode is not None:  # reaped by stop()
                return describe_exit(proc.returncode)
            if self._pidfd is not None:
                self._exited_within(1.0)
            result = os.waitid(os.P_PID, proc.pid, os.WEXITED | os.WNOHANG | os.WNOWAIT)
        if result is None:
            return "still running, its output closed"
        return describe_exit(result.si_status if result.si_code == os.CLD_EXITED else -result.si_status)

    def _tail(self) -> str:
        with self._cond:
            lines = list(self._lines)
        return "; its last output:\n  " + "\n  ".join(lines) if lines else "; it wrote nothing"

    def _exited_within(self, timeout_s: float) -> bool:
        assert self._pidfd is not None
        return pidfd_exited_within(self._pidfd, timeout_s)

    def stop(self) -> None:
        """SIGTERM to its process group, SIGKILL after ``STOP_GRACE_S``; whatever is left of the group is killed
        while the service, not yet reaped, still holds the group's id; then it is reaped."""
        proc = self._proc
        if proc is None or proc.returncode is not None:
            return
        self._stopping = True
        running = not self._exited_within(0)
        for sig in (signal.SIGTERM, signal.SIGKILL):
            try:
                os.killpg(proc.pid, sig)
            except ProcessLookupError:
                break
            if self._exited_within(STOP_GRACE_S if sig == signal.SIGTERM else 30):
                break
        try:
            os.killpg(proc.pid, signal.SIGKILL)  # the rest of its group
        except ProcessLookupError:
            pass
        with self._reaping:
            code = proc.wait()
        if self._reader is not None:
            self._reader.join(STOP_GRACE_S)  # a process that left the group may hold the pipe: not for ever
        if proc.stdout is not None:
            proc.stdout.close()
        if self._pidfd is not None:
            os.close(self._pidfd)
            self._pidfd = None
        if running:
            self._note("stopped", f"stopped ({describe_exit(code)})", exit_status=code)

"""Shared pieces of the benchmarks: a `lambda-freeze serve` subprocess, a cheap keep-alive HTTP client, statistics.

The client is a raw socket speaking just enough HTTP/1.1 (one request at a time, Content-Length bodies), so that
its own cost per request stays far below the emulator's; ``http.client`` is available for comparison.
"""

from __future__ import annotations

import http.client
import json
import os
import queue
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from emulator.engine import python_runtime

ROOT = Path(__file__).resolve().parent.parent
FUNCTIONS = Path(__file__).resolve().parent / "functions"
INVOKE_PATH = "/2015-03-31/functions/function/invocations"
SERVING = re.compile(r"lambda-freeze: serving .* on (http://[^\s]+) \(freezer: ([\w-]+)\)")
FLOOR_SERVING = re.compile(r"floor: serving on (http://[^\s]+)")


def lambda_freeze_command(src: Path | None = None) -> tuple[list[str], dict[str, str] | None]:
    """argv and environment that run ``lambda-freeze``: the console script of this interpreter (the project's
    venv), or, with ``src``, ``python -m emulator.cli`` from that source tree (to compare two versions)."""
    if src is not None:
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(src), env.get("PYTHONPATH")]))
        return [sys.executable, "-m", "emulator.cli"], env
    script = Path(sys.executable).parent / "lambda-freeze"
    if script.exists():
        return [str(script)], None
    return [sys.executable, "-m", "emulator.cli"], None


# --------------------------------------------------------------------------------------------------- server
class ServerError(RuntimeError):
    pass


class Server:
    """A server subprocess (``lambda-freeze serve --port 0``), ready once its ``serving ... on URL`` line is read.

    Function logs (stdout) go to ``stdout`` (``/dev/null`` by default, or ``subprocess.PIPE`` to read them through
    ``log_lines``); stderr is read by a thread throughout, so the emulator can never block on a full pipe.
    """

    def __init__(
        self,
        argv: list[str],
        *,
        stdout: int | None = subprocess.DEVNULL,
        env: dict[str, str] | None = None,
        ready: re.Pattern[str] = SERVING,
        cwd: Path = ROOT,
    ):
        self.argv = argv
        self._cwd = cwd
        self._ready = ready
        self._stdout = stdout
        self._env = env
        self.proc: subprocess.Popen[bytes] | None = None
        self.url = ""
        self.host = ""
        self.port = 0
        self.freezer = ""
        self.stderr_lines: list[str] = []
        self.log_lines: queue.Queue[str] = queue.Queue()
        self._stderr_queue: queue.Queue[str | None] = queue.Queue()
        self.spawned_ns = 0
        self.ready_ns = 0
        self._stderr_thread: threading.Thread | None = None

    def start(self, timeout_s: float = 30.0) -> Server:
        """Spawn the server and wait for its serving line; once only (``with Server(...).start()`` is fine)."""
        if self.proc is not None:
            return self
        self.spawned_ns = time.perf_counter_ns()
        self.proc = subprocess.Popen(
            self.argv,
            stdin=subprocess.DEVNULL,
            stdout=self._stdout,
            stderr=subprocess.PIPE,
            cwd=self._cwd,
            env=self._env,
        )
        self._stderr_thread = threading.Thread(target=self._read_stderr, daemon=True)
        self._stderr_thread.start()
        if self._stdout == subprocess.PIPE:
            threading.Thread(target=self._read_stdout, daemon=True).start()
        deadline = time.monotonic() + timeout_s
        while True:
            try:
                line = self._stderr_queue.get(timeout=max(0.0, deadline - time.monotonic()))
            except queue.Empty:
                self.stop()
                raise ServerError(f"no serving line within {timeout_s:.0f} s: {''.join(self.stderr_lines)}") from None
            if line is None:
                self.proc.wait()
                raise ServerError(
                    f"lambda-freeze exited with {self.proc.returncode} before serving:\n{''.join(self.stderr_lines)}"
                )
            match = self._ready.search(line)
            if match:
                self.ready_ns = time.perf_counter_ns()
                self.url = match.group(1)
                self.freezer = match.group(2) if match.re.groups >= 2 else ""
                hostport = self.url.split("//", 1)[1].rstrip("/")
                self.host, port = hostport.rsplit(":", 1)
                self.port = int(port)
                return self

    def _read_stderr(self) -> None:
        assert self.proc is not None and self.proc.stderr is not None
        for raw in self.proc.stderr:
            line = raw.decode("utf-8", "replace")
            self.stderr_lines.append(line)
            self._stderr_queue.put(line)
        self._stderr_queue.put(None)

    def _read_stdout(self) -> None:
        assert self.proc is not None and self.proc.stdout is not None
        for raw in self.proc.stdout:
            self.log_lines.put(raw.decode("utf-8", "replace").rstrip("\n"))

    def wait_log(self, prefix: str, timeout_s: float = 10.0) -> str:
        """The next function log line starting with ``prefix`` (needs ``stdout=subprocess.PIPE``)."""
        deadline = time.monotonic() + timeout_s
        while True:
            line = self.log_lines.get(timeout=max(0.0, deadline - time.monotonic()))
            if line.startswith(prefix):
                return line

    def log_until(self, prefix: str, timeout_s: float = 10.0) -> list[str]:
        """Function log lines up to and including the next one starting with ``prefix``."""
        lines: list[str] = []
        deadline = time.monotonic() + timeout_s
        while not lines or not lines[-1].startswith(prefix):
            lines.append(self.log_lines.get(timeout=max(0.0, deadline - time.monotonic())))
        return lines

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def stop(self, timeout_s: float = 15.0) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        if self._stderr_thread is not None:
            self._stderr_thread.join(timeout=5)  # the last lines it wrote, read to EOF

    @classmethod
    def lambda_freeze(
        cls,
        handler: str,
        *,
        freezer: str = "auto",
        code_dir: Path = FUNCTIONS / "trivial",
        extra_args: tuple[str, ...] = (),
        stdout: int | None = subprocess.DEVNULL,
        src: Path | None = None,
    ) -> Server:
        command, env = lambda_freeze_command(src)
        argv = [
            *command,
            "serve",
            "--code-dir",
            str(code_dir),
            "--handler",
            handler,
            "--port",
            "0",
            "--freezer",
            freezer,
            *extra_args,
        ]
        # ``python -m`` puts the working directory first on sys.path: run from the tree being measured.
        return cls(argv, stdout=stdout, env=env, cwd=src or ROOT)

    @classmethod
    def floor(cls, *, raw: bool = False) -> Server:
        """The hello server of ``_floor_server.py``: aiohttp + uvloop, or (``raw``) a bare uvloop protocol."""
        argv = [sys.executable, str(Path(__file__).resolve().parent / "_floor_server.py"), *(["--raw"] if raw else [])]
        return cls(argv, ready=FLOOR_SERVING)

    def __enter__(self) -> Server:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


class RieServer(Server):
    """AWS's Runtime Interface Emulator (an ``aws-lambda-rie`` binary the user built or downloaded) running the same
    function under the same runtime client, for figures measured beside ours on the same machine at the same time.

    RIE takes a fixed address (a free port is picked here) and prints no line when it listens: it is ready once it
    accepts a connection. It starts the runtime on the first invoke, as Lambda does. Its output (its own log lines
    and the function's) is read from stdout, stderr merged.
    """

    def __init__(self, binary: Path, handler: str, *, code_dir: Path = FUNCTIONS / "trivial"):
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            port = probe.getsockname()[1]
        argv = [
            str(binary),
            "--runtime-interface-emulator-address",
            f"127.0.0.1:{port}",
            # The same interpreter and awslambdaric as lambda-freeze's python3.X runtime, for a like-for-like run.
            python_runtime.executable(f"python{sys.version_info.major}.{sys.version_info.minor}"),
            "-m",
            "awslambdaric",
            handler,
        ]
        super().__init__(argv, stdout=subprocess.PIPE, cwd=code_dir)
        self.host, self.port, self.url, self.freezer = "127.0.0.1", port, f"http://127.0.0.1:{port}", "rie"

    def start(self, timeout_s: float = 30.0) -> Server:
        if self.proc is not None:
            return self
        self.spawned_ns = time.perf_counter_ns()
        self.proc = subprocess.Popen(
            self.argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, cwd=self._cwd
        )
        threading.Thread(target=self._read_stdout, daemon=True).start()
        deadline = time.monotonic() + timeout_s
        while True:
            try:
                socket.create_connection((self.host, self.port), timeout=1).close()
            except OSError:
                if self.proc.poll() is not None or time.monotonic() > deadline:
                    self.stop()
                    raise ServerError(f"aws-lambda-rie did not listen on {self.url}") from None
                time.sleep(0.0005)  # RIE prints nothing when it listens: polled, at most 0.5 ms late
                continue
            self.ready_ns = time.perf_counter_ns()
            return self

    def runtime_pid(self) -> int | None:
        """RIE's child: the runtime process (once the first invoke has started it)."""
        for task in Path(f"/proc/{self.pid}/task").iterdir():
            children = (task / "children").read_text().split()
            if children:
                return int(children[0])
        return None


# --------------------------------------------------------------------------------------------------- clients
class HttpError(RuntimeError):
    pass


class RawClient:
    """One keep-alive connection; ``post`` sends a prebuilt request and reads one Content-Length response."""

    def __init__(self, host: str, port: int):
        self.sock = socket.create_connection((host, port))
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self._buf = b""
        self._host = f"{host}:{port}"

    def request_bytes(self, method: str, path: str, body: bytes = b"", headers: dict[str, str] | None = None) -> bytes:
        lines = [f"{method} {path} HTTP/1.1", f"Host: {self._host}", f"Content-Length: {len(body)}"]
        if body:
            lines.append("Content-Type: application/json")
        lines += [f"{k}: {v}" for k, v in (headers or {}).items()]
        return ("\r\n".join(lines) + "\r\n\r\n").encode() + body

    def send(self, request: bytes) -> tuple[int, bytes]:
        self.sock.sendall(request)
        return self._read_response()

    def post(self, path: str, body: bytes) -> tuple[int, bytes]:
        return self.send(self.request_bytes("POST", path, body))

    def get(self, path: str) -> tuple[int, bytes]:
        return self.send(self.request_bytes("GET", path))

    def _read_chunked(self) -> bytes:
        """A chunked body (RIE answers large responses so); trailers are not expected. Reads into one bytearray, so a
        1 MB body costs the client no more than a Content-Length one would."""
        buf = bytearray(self._buf)
        body = bytearray()
        at = 0
        while True:
            eol = buf.find(b"\r\n", at)
            while eol < 0:
                self._more(buf)
                eol = buf.find(b"\r\n", at)
            size = int(bytes(buf[at:eol]).split(b";", 1)[0], 16)
            start = eol + 2
            while len(buf) < start + size + 2:
                self._more(buf)
            if size == 0:
                self._buf = bytes(buf[start + 2 :])
                return bytes(body)
            body += buf[start : start + size]
            at = start + size + 2

    def _more(self, buf: bytearray) -> None:
        chunk = self.sock.recv(262144)
        if not chunk:
            raise HttpError("connection closed mid-body")
        buf += chunk

    def _read_response(self) -> tuple[int, bytes]:
        buf = self._buf
        recv = self.sock.recv
        while True:
            end = buf.find(b"\r\n\r\n")
            if end >= 0:
                break
            chunk = recv(262144)
            if not chunk:
                raise HttpError("connection closed by the server")
            buf += chunk
        head = buf[:end]
        status = int(head[9:12])
        lower = head.lower()
        at = lower.find(b"\r\ncontent-length:")
        if at < 0:
            if b"\r\ntransfer-encoding: chunked" in lower:
                self._buf = buf[end + 4 :]
                return status, self._read_chunked()
            raise HttpError(f"response without Content-Length: {head[:200]!r}")
        eol = head.find(b"\r\n", at + 2)
        length = int(head[at + 17 : eol if eol >= 0 else len(head)])
        start = end + 4
        need = start + length
        if len(buf) < need:
            parts = [buf]
            have = len(buf)
            while have < need:
                chunk = recv(max(262144, need - have))
                if not chunk:
                    raise HttpError("connection closed mid-body")
                parts.append(chunk)
                have += len(chunk)
            buf = b"".join(parts)
        self._buf = buf[need:]
        return status, buf[start:need]

    def close(self) -> None:
        self.sock.close()


class StdlibClient:
    """The same interface over ``http.client.HTTPConnection`` (what a plain Python caller would use)."""

    def __init__(self, host: str, port: int):
        self.conn = http.client.HTTPConnection(host, port)
        self.conn.connect()
        self.conn.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def post(self, path: str, body: bytes) -> tuple[int, bytes]:
        self.conn.request("POST", path, body=body, headers={"Content-Type": "application/json"})
        response = self.conn.getresponse()
        return response.status, response.read()

    def get(self, path: str) -> tuple[int, bytes]:
        self.conn.request("GET", path)
        response = self.conn.getresponse()
        return response.status, response.read()

    def close(self) -> None:
        self.conn.close()


CLIENTS = {"raw": RawClient, "http.client": StdlibClient}


# ---------------------------------------------------------------------------------------------- inspection
def environments(server: Server) -> list[dict[str, object]]:
    client = RawClient(server.host, server.port)
    try:
        status, body = client.get("/_lambda-freeze/environments")
    finally:
        client.close()
    if status != 200:
        raise HttpError(f"inspection answered {status}")
    return list(json.loads(body))


def await_frozen(server: Server, count: int, timeout_s: float, states: tuple[str, ...] = ("frozen",)) -> float:
    """Until ``count`` environments are frozen, or in one of ``states`` (read through the inspection API); returns
    the time it took."""
    started = time.perf_counter()
    delay_s = 0.05
    while time.perf_counter() - started < timeout_s:
        envs = environments(server)
        if sum(env["state"] in states for env in envs) >= count:
            return time.perf_counter() - started
        time.sleep(delay_s)  # a benchmark waiting on a child process's progress, not a test
        delay_s = min(delay_s * 1.5, 1.0)
    raise TimeoutError(f"{count} environments were not frozen within {timeout_s} s")


# ------------------------------------------------------------------------------------------------ statistics
def percentile(sorted_values: list[float], q: float) -> float:
    """Linear interpolation between closest ranks (numpy's default), ``q`` in [0, 100]."""
    if not sorted_values:
        return float("nan")
    pos = (len(sorted_values) - 1) * q / 100
    lo = int(pos)
    hi = min(lo + 1, len(sorted_values) - 1)
    return sorted_values[lo] + (sorted_values[hi] - sorted_values[lo]) * (pos - lo)


@dataclass
class Latencies:
    """Per-request latencies in ms, and the wall time of the whole sequence."""

    samples_ms: list[float] = field(default_factory=list)
    wall_s: float = 0.0

    def summary(self) -> dict[str, float]:
        s = sorted(self.samples_ms)
        return {
            "n": len(s),
            "p50_ms": percentile(s, 50),
            "p90_ms": percentile(s, 90),
            "p99_ms": percentile(s, 99),
            "min_ms": s[0] if s else float("nan"),
            "max_ms": s[-1] if s else float("nan"),
            "mean_ms": sum(s) / len(s) if s else float("nan"),
            "invokes_per_s": len(s) / self.wall_s if self.wall_s else float("nan"),
        }


def timed_posts(
    client: RawClient | StdlibClient, path: str, body: bytes, n: int, expect: bytes | None = None
) -> Latencies:
    """``n`` sequential POSTs; every response must be 200 (and equal ``expect`` when given)."""
    out = Latencies()
    samples = out.samples_ms
    clock = time.perf_counter_ns
    post = client.post
    t_begin = clock()
    for _ in range(n):
        t0 = clock()
        status, payload = post(path, body)
        t1 = clock()
        if status != 200 or (expect is not None and payload != expect):
            raise HttpError(f"unexpected response {status}: {payload[:300]!r}")
        samples.append((t1 - t0) / 1e6)
    out.wall_s = (clock() - t_begin) / 1e9
    return out


# ------------------------------------------------------------------------------------------------ CPU time
def cpu_ns(pid: int) -> int | None:
    """CPU time of ``pid``'s live threads in ns (``/proc/<pid>/task/*/schedstat``, first field)."""
    total = 0
    try:
        tasks = os.listdir(f"/proc/{pid}/task")
    except OSError:
        return None
    for tid in tasks:
        try:
            with open(f"/proc/{pid}/task/{tid}/schedstat", "rb") as f:
                total += int(f.read().split()[0])
        except (OSError, ValueError, IndexError):
            continue
    return total


def emit(report: dict[str, object], as_json: bool, print_text: Callable[[], None]) -> int:
    """A benchmark's end: its report as one JSON document (``--json``), or ``print_text()``'s tables; exit status 0."""
    if as_json:
        json.dump(report, sys.stdout, indent=2)
        print()
    else:
        print_text()
    return 0

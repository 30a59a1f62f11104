"""Chaos soak: many invocations, mixed sync and async, while runtimes are SIGKILLed and the database restarts.

    python benchmarks/chaos_soak.py            # the issue's figures: 10,000 invocations by 16 callers
    python benchmarks/chaos_soak.py --quick    # a short run: 1,000 invocations
    python benchmarks/chaos_soak.py --invocations 3000 --callers 8 --kill-every 0.2

``lambda-freeze serve`` runs a function (``functions/chaos``) that writes one row per invocation to PostgreSQL
with asyncpg, through the emulator's fault proxy. ``--callers`` threads invoke it, a share ``--async-share`` of
the time with ``InvocationType=Event``; a share ``--fail-share`` of the events ask the handler to raise before it
writes anything (retried, then an on-failure record when async). One thread SIGKILLs a random runtime every
``--kill-every`` seconds on average (whatever state its environment is in), and once the run is ``--restart-at``
of the way through the database is restarted (``pg_ctlcluster ... restart``; it is started again at the end
whatever happened). The first tenth of the invocations is a warm-up, after which the emulator's RSS is read.

The promises, each printed with its figures (exit status 1 when one failed):
1. every sync invocation ends with a result or a Lambda-shaped error (``X-Amz-Function-Error`` with an
   ``errorType`` body, or an error status with ``x-amzn-ErrorType``) within its timeout + 1 s, not counting INIT
   outside the timeout (a cold start's, and one that failed before the invocation started); every successful
   answer is the answer to that invocation's own event, and the function's table holds its row;
2. every async event accepted (202) is delivered or sits in the on-failure record: counted from the function's
   own rows and the inspection API's records, delivered + failed = sent, nothing lost (an event may be both: its
   row written by an attempt that was then killed), and every Event invoke answered;
3. the emulator's RSS at the end is within 10% of its value after the warm-up;
4. nothing is left once the emulator stopped: no runtime process of this run, no cgroup, no watchdog.

This restarts the machine's PostgreSQL cluster once: whatever else uses it at that moment sees its connections
closed.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import http.client
import json
import os
import random
import re
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import asyncpg
from _harness import FUNCTIONS, Server, lambda_freeze_command, percentile

FUNCTION = "chaos"
INVOKE_PATH = f"/2015-03-31/functions/{FUNCTION}/invocations"
PG = {"host": "127.0.0.1", "port": 5432, "user": "postgres", "database": "test"}
INIT_DURATION = re.compile(r"Init Duration: ([0-9.]+) ms")
ENGINE_LINES = ("INIT_START", "INIT_REPORT", "START", "END", "REPORT")
CLIENT_TIMEOUT_S = 60.0  # a caller waiting this long has met a hang, whatever the promise says
DRAIN_TIMEOUT_S = 180.0
RSS_TOLERANCE = 0.10


# ------------------------------------------------------------------------------------------------ PostgreSQL
def sql(query: str, *, attempts: int = 30) -> list[Any]:
    """Run one statement as the benchmark (not the function), retrying the connection while the server starts."""

    async def run() -> list[Any]:
        for attempt in range(attempts):
            try:
                conn = await asyncpg.connect(**PG, timeout=5)
            except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError):
                if attempt == attempts - 1:
                    raise
                await asyncio.sleep(1)  # the server is (re)starting
                continue
            try:
                return list(await conn.fetch(query))
            finally:
                await conn.close()
        raise AssertionError("unreachable")

    return asyncio.run(run())


def pg_cluster() -> list[str]:
    version = sorted(os.listdir("/etc/postgresql"))[-1]
    return [version, "main"]


def pg_ctl(action: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["pg_ctlcluster", "--skip-systemctl-redirect", *pg_cluster(), action],
        capture_output=True,
        text=True,
        timeout=120,
    )


def ensure_postgres_up() -> str:
    """Started again if it is down, whatever happened to the run; returns what was done."""
    if pg_ctl("status").returncode == 0:
        return "running"
    started = pg_ctl("start")
    if started.returncode != 0:
        return f"could not start: {started.stderr.strip()}"
    return "started"


# ------------------------------------------------------------------------------------------------ processes
def rss_kb(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise RuntimeError(f"no VmRSS for {pid}")


def runtime_pids(marker: str) -> list[int]:
    """Processes carrying ``marker`` in their environment: this run's runtimes (the function's variables)."""
    found = []
    needle = marker.encode()
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            environ = Path(f"/proc/{entry}/environ").read_bytes()
        except OSError:
            continue
        if needle in environ.split(b"\0"):
            found.append(int(entry))
    return found


def processes_mentioning(text: str) -> list[int]:
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            cmdline = Path(f"/proc/{entry}/cmdline").read_bytes().replace(b"\0", b" ").decode("utf-8", "replace")
        except OSError:
            continue
        if text in cmdline and int(entry) != os.getpid():
            found.append(int(entry))
    return found


def freeze_roots() -> list[Path]:
    """Every ``lambda-freeze`` directory near the top of the mounted cgroup hierarchies."""
    roots = []
    for line in Path("/proc/self/mounts").read_text().splitlines():
        parts = line.split()
        if len(parts) < 3 or parts[2] not in ("cgroup", "cgroup2"):
            continue
        mount = Path(parts[1])
        for depth in range(4):
            roots += [p for p in mount.glob("/".join(["*"] * depth + ["lambda-freeze"])) if p.is_dir()]
    return roots


def leftover_cgroups(emulator_pid: int) -> list[Path]:
    return [p for root in freeze_roots() for p in root.glob(f"i{emulator_pid}.*")]


# ----------------------------------------------------------------------------------------------------- soak
@dataclass
class SyncOutcome:
    index: int
    kind: str  # "ok" | an error type | "broken" (no answer, or not Lambda-shaped)
    elapsed_s: float
    init_s: float
    detail: str = ""
    log: str = ""  # the engine's lines in the log tail: INIT_START, INIT_REPORT, START, END, REPORT


@dataclass
class Figures:
    sync: list[SyncOutcome] = field(default_factory=list)
    async_sent: set[str] = field(default_factory=set)
    async_refused: Counter[str] = field(default_factory=Counter)
    kills: Counter[str] = field(default_factory=Counter)
    restart: dict[str, Any] = field(default_factory=dict)


class Soak:
    def __init__(self, server: Server, args: argparse.Namespace, marker: str):
        self.server = server
        self.args = args
        self.marker = marker
        rng = random.Random(args.seed)
        self.plan = ["async" if rng.random() < args.async_share else "sync" for _ in range(args.invocations)]
        self.failing = {i for i in range(args.invocations) if rng.random() < args.fail_share}
        self.figures = Figures()
        self._lock = threading.Lock()
        self._next = 0
        self._end = 0
        self._restart_at: int | None = None
        self._stop_killing = threading.Event()
        self._restart_thread: threading.Thread | None = None

    # callers -----------------------------------------------------------------------------------------------
    def _take(self) -> int | None:
        with self._lock:
            if self._next >= self._end:
                return None
            index = self._next
            self._next += 1
            if index == self._restart_at:
                self._restart_thread = threading.Thread(target=self._restart_database, daemon=True)
                self._restart_thread.start()
            return index

    def run_phase(self, start: int, end: int, restart_at: int | None = None) -> None:
        self._next, self._end, self._restart_at = start, end, restart_at
        threads = [threading.Thread(target=self._caller, daemon=True) for _ in range(self.args.callers)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        if self._restart_thread is not None:
            self._restart_thread.join()

    def _connect(self) -> http.client.HTTPConnection:
        return http.client.HTTPConnection(self.server.host, self.server.port, timeout=CLIENT_TIMEOUT_S)

    def _caller(self) -> None:
        conn = self._connect()
        while (index := self._take()) is not None:
            kind = self.plan[index]
            event_id = f"{kind[0]}-{index}"
            body = json.dumps({"id": event_id, "kind": kind, "fail": index in self.failing}).encode()
            headers = {"Content-Type": "application/json"}
            headers.update({"X-Amz-Invocation-Type": "Event"} if kind == "async" else {"X-Amz-Log-Type": "Tail"})
            started = time.perf_counter()
            try:
                conn.request("POST", INVOKE_PATH, body, headers)
                response = conn.getresponse()
                data = response.read()
            except (OSError, http.client.HTTPException) as exc:
                elapsed = time.perf_counter() - started
                conn.close()
                conn = self._connect()
                if kind == "sync":
                    self._add(SyncOutcome(index, "broken", elapsed, 0.0, f"no answer: {exc!r}"))
                else:
                    with self._lock:
                        self.figures.async_refused[f"no answer: {type(exc).__name__}"] += 1
                continue
            elapsed = time.perf_counter() - started
            if kind == "async":
                with self._lock:
                    if response.status == 202:
                        self.figures.async_sent.add(event_id)
                    else:
                        self.figures.async_refused[str(response.getheader("x-amzn-ErrorType"))] += 1
                continue
            self._add(self._judge(index, event_id, response, data, elapsed))
        conn.close()

    def _add(self, outcome: SyncOutcome) -> None:
        with self._lock:
            self.figures.sync.append(outcome)

    @staticmethod
    def _init_outside(lines: list[str]) -> float:
        """Seconds of INIT outside the invocation's timeout: those that failed before its START, and the cold
        start's INIT that its REPORT carries (an INIT retried after its START runs under the timeout)."""
        started = next((i for i, line in enumerate(lines) if line.startswith("START ")), len(lines))
        before = [line for line in lines[:started] if line.startswith("INIT_REPORT")]
        report = [line for line in lines if line.startswith("REPORT ")]
        return sum(float(ms) for line in before + report[-1:] for ms in INIT_DURATION.findall(line)) / 1000

    @staticmethod
    def _judge(
        index: int, event_id: str, response: http.client.HTTPResponse, data: bytes, elapsed: float
    ) -> SyncOutcome:
        tail = response.getheader("X-Amz-Log-Result")
        log = base64.b64decode(tail).decode("utf-8", "replace") if tail else ""
        lines = "\n".join(line for line in log.splitlines() if line.startswith(ENGINE_LINES))
        init_s = Soak._init_outside(lines.splitlines())
        try:
            payload = json.loads(data) if data else None
        except ValueError:
            payload = None
        if response.status == 200:
            function_error = response.getheader("X-Amz-Function-Error")
            if function_error is None:
                if isinstance(payload, dict) and payload.get("id") == event_id:
                    return SyncOutcome(index, "ok", elapsed, init_s, "", lines)
                return SyncOutcome(index, "broken", elapsed, init_s, f"answer to another event: {data[:200]!r}", lines)
            if isinstance(payload, dict) and "errorType" in payload and "errorMessage" in payload:
                return SyncOutcome(
                    index, str(payload["errorType"]), elapsed, init_s, str(payload["errorMessage"]), lines
                )
            return SyncOutcome(
                index, "broken", elapsed, init_s, f"function error not Lambda-shaped: {data[:200]!r}", lines
            )
        error_type = response.getheader("x-amzn-ErrorType")
        if error_type and isinstance(payload, dict) and ("message" in payload or "Message" in payload):
            return SyncOutcome(index, error_type, elapsed, init_s, f"HTTP {response.status}")
        return SyncOutcome(
            index, "broken", elapsed, init_s, f"HTTP {response.status} not Lambda-shaped: {data[:200]!r}"
        )

    # chaos -------------------------------------------------------------------------------------------------
    def inspect(self, what: str) -> Any:
        conn = self._connect()
        try:
            conn.request("GET", f"/_lambda-freeze/{what}")
            return json.loads(conn.getresponse().read())
        finally:
            conn.close()

    def killer(self) -> None:
        rng = random.Random(self.args.seed + 1)
        while not self._stop_killing.wait(rng.expovariate(1 / self.args.kill_every)):
            try:
                envs = [e for e in self.inspect("environments") if e["pid"] and e["state"] != "stopped"]
            except (OSError, http.client.HTTPException, ValueError):
                continue
            if not envs:
                continue
            env = rng.choice(envs)
            if env["pid"] not in runtime_pids(self.marker):  # gone, and its pid perhaps someone else's now
                continue
            try:
                os.kill(env["pid"], signal.SIGKILL)
            except ProcessLookupError:
                continue
            with self._lock:
                self.figures.kills[env["phase"]] += 1

    def stop_killing(self) -> None:
        self._stop_killing.set()

    def _restart_database(self) -> None:
        self.figures.restart["at_s"] = time.perf_counter()
        result = pg_ctl("restart")
        self.figures.restart["took_s"] = time.perf_counter() - self.figures.restart["at_s"]
        self.figures.restart["status"] = result.returncode
        self.figures.restart["stderr"] = result.stderr.strip()

    def drain(self) -> dict[str, Any]:
        """Until no asynchronous event is queued, waiting for a retry, or in flight; the inspection API's view."""
        deadline = time.monotonic() + DRAIN_TIMEOUT_S
        delay_s = 0.05
        while True:
            status = self.inspect("async")
            queue = status["functions"][FUNCTION]
            if queue["queued"] + queue["retrying"] + queue["in_flight"] == 0:
                return dict(status)
            if time.monotonic() > deadline:
                raise TimeoutError(f"asynchronous events still pending after {DRAIN_TIMEOUT_S:.0f} s: {queue}")
            time.sleep(delay_s)  # a benchmark waiting on a child process's progress, not a test
            delay_s = min(delay_s * 1.5, 1.0)


# ------------------------------------------------------------------------------------------------ the run
def config_file(directory: Path, args: argparse.Namespace, table: str) -> Path:
    path = directory / "chaos.toml"
    path.write_text(
        f"""[server]
freezer = "{args.freezer}"

[functions.{FUNCTION}]
code_dir = "{FUNCTIONS / "chaos"}"
handler = "app.handler"
runtime = "python3.11"
timeout = {args.timeout}
reserved_concurrency = {args.callers + 8}
maximum_retry_attempts = 2
retry_delays = [1, 2]
env = {{ CHAOS_TABLE = "{table}", DB_USER = "{PG["user"]}", DB_NAME = "{PG["database"]}" }}
upstreams = {{ DB = "{PG["host"]}:{PG["port"]}" }}
"""
    )
    return path


def soak(args: argparse.Namespace) -> int:
    table = f"chaos_soak_{os.getpid()}"
    marker = f"CHAOS_TABLE={table}"
    promises: list[tuple[str, bool, str]] = []
    report: list[str] = []
    sql(f"CREATE TABLE {table} (event_id text NOT NULL, kind text NOT NULL, request_id text NOT NULL)")
    try:
        with tempfile.TemporaryDirectory(prefix="chaos-soak-") as tmp:
            command, env = lambda_freeze_command()
            argv = [*command, "serve", "--config", str(config_file(Path(tmp), args, table)), "--port", "0"]
            server = Server(argv, env=env).start(timeout_s=60)
            emulator_pid = server.pid
            run = Soak(server, args, marker)
            killer = threading.Thread(target=run.killer, daemon=True)
            warmup = max(1, args.invocations // 10)
            began = time.perf_counter()
            try:
                killer.start()
                run.run_phase(0, warmup)
                run.drain()
                rss_warm_kb = rss_kb(emulator_pid)
                main_began = time.perf_counter()
                restart_at = warmup + int((args.invocations - warmup) * args.restart_at)
                run.run_phase(warmup, args.invocations, restart_at)
                main_s = time.perf_counter() - main_began
                run.stop_killing()
                killer.join()
                status = run.drain()
                rss_end_kb = rss_kb(emulator_pid)
                envs_at_end = len(run.inspect("environments"))
            finally:
                run.stop_killing()
                server.stop(timeout_s=60)
            elapsed_s = time.perf_counter() - began
            left_runtimes = runtime_pids(marker)
            left_cgroups = leftover_cgroups(emulator_pid)
            left_watchdogs = processes_mentioning(f"/i{emulator_pid}.")
    finally:
        db_state = ensure_postgres_up()
        try:
            rows = sql(f"SELECT event_id, kind FROM {table}")
        finally:
            sql(f"DROP TABLE {table}")

    figures = run.figures
    # 1. sync invocations
    sync = figures.sync
    outcomes = Counter(o.kind for o in sync)
    bound_s = args.timeout + 1.0
    late = [o for o in sync if o.elapsed_s - o.init_s > bound_s]
    broken = [o for o in sync if o.kind == "broken"]
    rows_by_kind: dict[str, set[str]] = {"sync": set(), "async": set()}
    row_count: Counter[str] = Counter()
    for row in rows:
        rows_by_kind[row["kind"]].add(row["event_id"])
        row_count[row["kind"]] += 1
    ok_ids = {f"s-{o.index}" for o in sync if o.kind == "ok"}
    ok_without_row = ok_ids - rows_by_kind["sync"]
    planned_sync = run.plan.count("sync")
    latencies = sorted(o.elapsed_s * 1000 for o in sync)
    report.append(
        f"sync: {len(sync)} of {planned_sync} answered; "
        + ", ".join(f"{kind} {count}" for kind, count in outcomes.most_common())
        + f"; latency p50 {percentile(latencies, 50):.0f} ms, p99 {percentile(latencies, 99):.0f} ms, "
        f"max {max(latencies, default=0):.0f} ms"
    )
    examples = {o.kind: o for o in sync if o.kind != "ok"}
    for kind, o in sorted(examples.items()):
        report.append(f"  e.g. {kind}: {o.detail[:160]}")
    for o in (broken + late)[:10]:
        report.append(f"  invocation {o.index}: {o.kind} after {o.elapsed_s:.2f} s (INIT {o.init_s:.2f} s) {o.detail}")
        report += [f"    {line}" for line in o.log.splitlines()]
    promises.append(
        (
            "every sync invocation answered, Lambda-shaped, within its timeout + 1 s",
            len(sync) == planned_sync and not broken and not late and not ok_without_row,
            f"{len(sync) - len(broken) - len(late)}/{planned_sync}; not Lambda-shaped or unanswered {len(broken)}, "
            f"later than {bound_s:.0f} s {len(late)}, answered ok without the function's row {len(ok_without_row)}",
        )
    )
    # 2. asynchronous events
    sent = figures.async_sent
    failure_records = [f for f in status["failures"] if f":function:{FUNCTION}:" in f["requestContext"]["functionArn"]]
    failed_ids = {str(f["requestPayload"]["id"]) for f in failure_records}
    delivered_ids = rows_by_kind["async"] & sent
    lost = sent - delivered_ids - failed_ids
    unanswered = sum(n for why, n in figures.async_refused.items() if why.startswith("no answer"))
    queue = status["functions"][FUNCTION]
    conditions = Counter(f["requestContext"]["condition"] for f in failure_records)
    report.append(
        f"async: {len(sent)} accepted, {sum(figures.async_refused.values())} refused"
        f"{f' {dict(figures.async_refused)}' if figures.async_refused else ''}; the emulator counts "
        f"{queue['delivered']} delivered + {queue['failed']} failed{f' {dict(conditions)}' if conditions else ''}; "
        f"the function's rows: {len(rows_by_kind['async'])} events "
        f"({row_count['async'] - len(rows_by_kind['async'])} run more than once)"
    )
    promises.append(
        (
            "every async event delivered or in the on-failure record",
            not lost
            and not unanswered
            and queue["delivered"] + queue["failed"] == len(sent)
            and len(failed_ids) == len(failure_records),
            f"sent {len(sent)} = delivered {len(delivered_ids - failed_ids)} + failed {len(failed_ids)} "
            f"(of which {len(failed_ids & delivered_ids)} also ran); lost {len(lost)}; Event invokes unanswered "
            f"{unanswered}" + (f": {sorted(lost)[:5]}" if lost else ""),
        )
    )
    # 3. memory
    growth = (rss_end_kb - rss_warm_kb) / rss_warm_kb
    promises.append(
        (
            "emulator RSS at the end within 10% of its value after the warm-up",
            abs(growth) <= RSS_TOLERANCE,
            f"{rss_warm_kb / 1024:.1f} MB after {warmup} invocations, {rss_end_kb / 1024:.1f} MB at the end "
            f"({growth:+.1%}, {envs_at_end} environments)",
        )
    )
    # 4. orphans
    promises.append(
        (
            "nothing left after stop",
            not left_runtimes and not left_cgroups and not left_watchdogs,
            f"runtime processes {left_runtimes or 0}, cgroups {[str(p) for p in left_cgroups] or 0}, "
            f"watchdogs {left_watchdogs or 0}",
        )
    )

    kills = ", ".join(f"{phase} {count}" for phase, count in figures.kills.most_common())
    restart = figures.restart
    restart_text = (
        f"restarted at +{restart['at_s'] - began:.1f} s, took {restart['took_s']:.1f} s"
        + (f", exit status {restart['status']}: {restart['stderr']}" if restart["status"] else "")
        if restart
        else "not restarted"
    )
    print(
        f"chaos soak: {args.invocations} invocations ({planned_sync} sync, {args.invocations - planned_sync} async) "
        f"by {args.callers} callers, freezer {server.freezer}, timeout {args.timeout:g} s; "
        f"{elapsed_s:.1f} s in all, main phase {(args.invocations - warmup) / main_s:.0f} invocations/s; "
        f"load average {os.getloadavg()[0]:.1f}"
    )
    print(
        f"  runtimes SIGKILLed: {sum(figures.kills.values())} ({kills}); database {restart_text}; "
        f"at the end: {db_state}"
    )
    for line in report:
        print(f"  {line}")
    for name, held, text in promises:
        print(f"  [{'held' if held else 'FAILED'}] {name}: {text}")
    return 0 if all(held for _, held, _ in promises) else 1


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="a short run: 1,000 invocations")
    parser.add_argument("--invocations", type=int, help="invocations in all (default 10,000; --quick 1,000)")
    parser.add_argument("--callers", type=int, default=16, help="concurrent callers (default 16)")
    parser.add_argument("--async-share", type=float, default=0.25, help="fraction sent as Event (default 0.25)")
    parser.add_argument("--fail-share", type=float, default=0.01, help="fraction whose handler fails (0.01)")
    parser.add_argument("--kill-every", type=float, default=0.25, help="mean seconds between SIGKILLs (default 0.25)")
    parser.add_argument("--restart-at", type=float, default=0.4, help="restart the database this far in (0.4)")
    parser.add_argument("--timeout", type=float, default=3.0, help="function timeout, seconds (default 3)")
    parser.add_argument("--freezer", default="auto", help="freezer backend (default auto)")
    parser.add_argument("--seed", type=int, default=7, help="random seed of the mix and the kills")
    args = parser.parse_args()
    if args.invocations is None:
        args.invocations = 1000 if args.quick else 10_000
    if args.callers < 1 or args.invocations < args.callers:
        parser.error("--invocations must be at least --callers, and --callers at least 1")
    sys.exit(soak(args))


if __name__ == "__main__":
    main()

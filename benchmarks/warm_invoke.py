"""Warm invoke, 1 MB echo and cold start of `lambda-freeze serve`, for each freezer, beside AWS RIE's figures.

    .venv/bin/python benchmarks/warm_invoke.py            # full run: 2,000 invokes per freezer, ~2 minutes
    .venv/bin/python benchmarks/warm_invoke.py --quick    # smoke run: 200 invokes, 3 cold starts
    .venv/bin/python benchmarks/warm_invoke.py --json     # the same figures as one JSON document

Every figure is measured against a `lambda-freeze serve --port 0` subprocess started here (function logs to
/dev/null), by a client holding one keep-alive connection and sending one request at a time:

- warm invoke: a trivial awslambdaric handler (``benchmarks/functions/trivial/app.py``), POST
  /2015-03-31/functions/function/invocations, N sequential invokes after a warm-up; p50/p90/p99 and invokes/s,
  plus the CPU each process spent per invoke (emulator, runtime, this client);
- 1 MB echo: the handler returns its event, a ~1 MB JSON document;
- cold start: spawn → serving line → first response, repeated; with INIT as the emulator reports it
  (REPORT's ``Init Duration``) and the first invoke's latency as the client sees it;
- new environment: in a running emulator, an invocation that finds no idle environment (``--max-invocations 1``
  retires each one after its invocation), caller's request → response, with the freezer and the memory limit on;
  with the standby (the next environment's process parked in its cgroups before its exec) and ``--no-standby``;
  RIE's is its first invoke after launch (it starts the runtime then);
- pytest: in this process (the emulator imported), ``LambdaFreeze(spare=True).function(...)`` then the first
  ``invoke``, as the plugin's fixture does it test after test (each teardown starts the next test's emulator, with a
  spare process parked in its cgroups); a whole test with that one invoke (fixture setup, ``function(...)``, the
  invoke, teardown); and the plugin's per-test overhead, fixture setup + ``function(...)`` + teardown with no
  invocation;
- serve start: launch → serving line, beside ``python -c "import asyncio, uvloop"`` (the floor of any uvloop server);
- floor: the same client against a bare uvloop protocol that answers at once (one HTTP round trip, no parsing),
  the least any Python server can cost (an invoke is three such round trips: Invoke API, runtime ``response``,
  runtime ``next``).

The targets are AWS RIE's figures as the issue gives them for this machine kind. A machine's speed moves, so with
``--rie PATH/aws-lambda-rie`` (a binary from AWS's releases, or built from its repository) RIE is measured too, in
the same run, with the same client and the same function under the same awslambdaric, and the targets become its
figures: ``.venv/bin/python benchmarks/warm_invoke.py --freezer auto --rie ~/bin/aws-lambda-rie``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from _harness import (
    CLIENTS,
    INVOKE_PATH,
    RawClient,
    RieServer,
    Server,
    cpu_ns,
    emit,
    timed_posts,
)

# AWS's Runtime Interface Emulator on this machine kind (it does not freeze).
REFERENCE = {
    "warm_p50_ms": 0.66,
    "echo_1mb_p50_ms": 11.4,
    "invokes_per_s": 1400.0,
    "cold_start_ms": 50.7,
}
FREEZERS = ("auto", "cgroup1", "sigstop", "none")
SMALL_EVENT = b'{"ping": 1}'
SMALL_RESPONSE = b'{"ok": true}'
INIT_DURATION = re.compile(r"Init Duration: ([\d.]+) ms")
RIE_INIT_DURATION = re.compile(r"INIT REPORT\(durationMs: ([\d.]+)\)")  # RIE's REPORT line has a bogus one
DURATION = re.compile(r"\tDuration: ([\d.]+) ms")


def _cpu_snapshot(pids: dict[str, int]) -> dict[str, int | None]:
    snap: dict[str, int | None] = {name: cpu_ns(pid) for name, pid in pids.items()}
    snap["client"] = time.process_time_ns()
    return snap


def _cpu_per_invoke_us(before: dict[str, int | None], after: dict[str, int | None], n: int) -> dict[str, float | None]:
    out: dict[str, float | None] = {}
    for name, start in before.items():
        end = after.get(name)
        out[name] = None if start is None or end is None else (end - start) / 1e3 / n
    return out


def _runtime_pid(client: RawClient | object) -> int | None:
    status, body = client.get("/_lambda-freeze/environments")  # type: ignore[attr-defined]
    if status != 200:
        return None
    envs = json.loads(body)
    return envs[0]["pid"] if envs else None


def _server(kind: str, handler: str, args: argparse.Namespace, stdout: int | None = subprocess.DEVNULL) -> Server:
    """``lambda-freeze serve`` with the freezer ``kind``, or (``kind`` "rie") AWS's RIE running the same function."""
    if kind == "rie":
        return RieServer(args.rie, handler)
    return Server.lambda_freeze(handler, freezer=kind, stdout=stdout, src=args.src)


def _runtime_pid_of(server: Server, client: RawClient | object) -> int | None:
    return server.runtime_pid() if isinstance(server, RieServer) else _runtime_pid(client)


def bench_floor(args: argparse.Namespace) -> dict[str, object]:
    with Server.floor(raw=True) as server:
        client = CLIENTS[args.client](server.host, server.port)
        try:
            timed_posts(client, INVOKE_PATH, SMALL_EVENT, args.warmup, SMALL_RESPONSE)
            before = _cpu_snapshot({"server": server.pid})
            result = timed_posts(client, INVOKE_PATH, SMALL_EVENT, args.invokes, SMALL_RESPONSE)
            after = _cpu_snapshot({"server": server.pid})
        finally:
            client.close()
        return {**result.summary(), "cpu_us_per_request": _cpu_per_invoke_us(before, after, args.invokes)}


def bench_warm(freezer: str, args: argparse.Namespace) -> dict[str, object]:
    with _server(freezer, "app.handler", args) as server:
        client = CLIENTS[args.client](server.host, server.port)
        try:
            timed_posts(client, INVOKE_PATH, SMALL_EVENT, args.warmup, SMALL_RESPONSE)  # the first one is cold
            pids = {"emulator": server.pid}  # RIE's process when measuring RIE
            runtime_pid = _runtime_pid_of(server, client)
            if runtime_pid is not None:
                pids["runtime"] = runtime_pid
            before = _cpu_snapshot(pids)
            result = timed_posts(client, INVOKE_PATH, SMALL_EVENT, args.invokes, SMALL_RESPONSE)
            after = _cpu_snapshot(pids)
        finally:
            client.close()
        return {
            "freezer": server.freezer,
            **result.summary(),
            "cpu_us_per_invoke": _cpu_per_invoke_us(before, after, args.invokes),
        }


def bench_echo(freezer: str, args: argparse.Namespace) -> dict[str, object]:
    event = json.dumps({"data": "x" * 1_000_000}).encode()
    with _server(freezer, "app.echo", args) as server:
        client = CLIENTS[args.client](server.host, server.port)
        try:
            timed_posts(client, INVOKE_PATH, event, args.echo_warmup, event)
            pids = {"emulator": server.pid}  # RIE's process when measuring RIE
            runtime_pid = _runtime_pid_of(server, client)
            if runtime_pid is not None:
                pids["runtime"] = runtime_pid
            before = _cpu_snapshot(pids)
            result = timed_posts(client, INVOKE_PATH, event, args.echo_invokes, event)
            after = _cpu_snapshot(pids)
        finally:
            client.close()
        return {
            "freezer": server.freezer,
            "payload_bytes": len(event),
            **result.summary(),
            "cpu_us_per_invoke": _cpu_per_invoke_us(before, after, args.echo_invokes),
        }


def bench_cold(freezer: str, args: argparse.Namespace) -> dict[str, object]:
    runs = []
    for _ in range(args.cold_runs):
        server = _server(freezer, "app.handler", args, stdout=subprocess.PIPE)
        server.start()
        try:
            t_sent = time.perf_counter_ns()
            client = RawClient(server.host, server.port)
            status, body = client.post(INVOKE_PATH, SMALL_EVENT)
            t_first = time.perf_counter_ns()
            if status != 200 or body != SMALL_RESPONSE:
                raise RuntimeError(f"cold invoke answered {status}: {body[:300]!r}")
            status, body = client.post(INVOKE_PATH, SMALL_EVENT)
            t_second = time.perf_counter_ns()
            client.close()
            lines = server.log_until("REPORT ")
        finally:
            server.stop()
        report = lines[-1]
        if isinstance(server, RieServer):
            init = next(filter(None, map(RIE_INIT_DURATION.search, lines)), None)
        else:
            init = INIT_DURATION.search(report)
        duration = DURATION.search(report)
        runs.append(
            {
                "launch_to_first_response_ms": (t_first - server.spawned_ns) / 1e6,
                "launch_to_serving_ms": (server.ready_ns - server.spawned_ns) / 1e6,
                "first_invoke_ms": (t_first - t_sent) / 1e6,
                "init_duration_ms": float(init.group(1)) if init else None,
                "first_duration_ms": float(duration.group(1)) if duration else None,
                "second_invoke_ms": (t_second - t_first) / 1e6,
            }
        )
    keys = runs[0].keys()
    median = {
        key: statistics.median(values) if (values := [r[key] for r in runs if r[key] is not None]) else None
        for key in keys
    }
    return {"freezer": server.freezer, "runs": len(runs), "median": median, "all": runs}


def _median_ms(values_ns: list[int]) -> float:
    return statistics.median(values_ns) / 1e6


def _settle(server: Server, client: RawClient) -> None:
    """Until the emulator has no environment left (the retired one stopped), then a pause for its standby."""
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        status, body = client.get("/_lambda-freeze/environments")
        if status == 200 and json.loads(body) == []:
            break
        time.sleep(0.01)
    time.sleep(0.2)  # the next standby is made once the last INIT is over: off the measured request, as in use


def _rie_new_env(args: argparse.Namespace) -> tuple[int, float | None]:
    """One RIE launched, its first invoke (which starts the runtime) timed: ns, and its Init Duration in ms."""
    with RieServer(args.rie, "app.handler") as server:
        client = RawClient(server.host, server.port)
        t0 = time.perf_counter_ns()
        status, body = client.post(INVOKE_PATH, SMALL_EVENT)
        elapsed = time.perf_counter_ns() - t0
        client.close()
        if status != 200 or body != SMALL_RESPONSE:
            raise RuntimeError(f"RIE's first invoke answered {status}: {body[:300]!r}")
        init = next(filter(None, map(RIE_INIT_DURATION.search, server.log_until("REPORT "))), None)
    return elapsed, float(init.group(1)) if init else None


def _new_env_server(kind: str, args: argparse.Namespace) -> Server:
    """``serve`` whose every invocation finds no idle environment (``--max-invocations 1``)."""
    extra = ("--max-invocations", "1", "--no-reload", *(("--no-standby",) if kind == "no-standby" else ()))
    return Server.lambda_freeze(
        "app.handler", freezer="auto", stdout=subprocess.PIPE, src=args.src, extra_args=extra
    )


def _ours_new_env(server: Server, client: RawClient) -> tuple[int, float | None]:
    """One invocation of ``_new_env_server``'s, once its last environment is gone: ns, and its Init Duration in ms."""
    _settle(server, client)
    t0 = time.perf_counter_ns()
    status, body = client.post(INVOKE_PATH, SMALL_EVENT)
    elapsed = time.perf_counter_ns() - t0
    if status != 200 or body != SMALL_RESPONSE:
        raise RuntimeError(f"new-environment invoke answered {status}: {body[:300]!r}")
    init = INIT_DURATION.search(server.log_until("REPORT ")[-1])
    return elapsed, float(init.group(1)) if init else None


def _new_env_figures(kind: str, samples: list[int], inits: list[float]) -> dict[str, object]:
    return {
        "kind": kind,
        "runs": len(samples),
        "median_ms": _median_ms(samples),
        "p90_ms": sorted(samples)[int(0.9 * (len(samples) - 1))] / 1e6,
        "init_ms": statistics.median(inits) if inits else None,
    }


def bench_new_env(kind: str, args: argparse.Namespace) -> dict[str, object]:
    """Caller's request → response for invocations that each find no idle environment."""
    samples: list[int] = []
    inits: list[float] = []
    if kind == "rie":  # one environment per RIE: its first invoke after launch starts the runtime
        for _ in range(args.cold_runs):
            elapsed, init = _rie_new_env(args)
            samples.append(elapsed)
            inits.extend([init] if init is not None else [])
        return _new_env_figures(kind, samples, inits)
    server = _new_env_server(kind, args)
    with server:
        client = RawClient(server.host, server.port)
        try:
            for _ in range(args.cold_runs):
                elapsed, init = _ours_new_env(server, client)
                samples.append(elapsed)
                inits.extend([init] if init is not None else [])
        finally:
            client.close()
    return {**_new_env_figures(kind, samples, inits), "freezer": server.freezer}


_PYTEST_SESSION = """
import json
import os
import time
from pathlib import Path

import pytest

CODE = Path(os.environ["BENCH_CODE"])
OUT = Path(os.environ["BENCH_OUT"])


def _record(figure, started_ns):
    with OUT.open("a") as out:
        out.write(json.dumps({"figure": figure, "ns": time.perf_counter_ns() - started_ns}) + "\\n")


@pytest.mark.parametrize("n", range(int(os.environ["BENCH_TESTS"])))
def test_one_invoke(lambda_freeze, n):
    started = time.perf_counter_ns()
    fn = lambda_freeze.function(CODE, "app.handler")
    assert fn.invoke({"ping": 1}).payload == {"ok": True}
    _record("first_response", started)


@pytest.mark.parametrize("n", range(int(os.environ["BENCH_TESTS"])))
def test_no_invoke(lambda_freeze, n):
    lambda_freeze.function(CODE, "app.handler")
"""

_PYTEST_TIMES = """
import json
import os
from pathlib import Path


def pytest_runtest_logreport(report):
    with Path(os.environ["BENCH_OUT"]).open("a") as out:
        out.write(json.dumps({"figure": report.when, "test": report.nodeid, "ns": int(report.duration * 1e9)}) + "\\n")
"""


def bench_pytest(args: argparse.Namespace) -> dict[str, object]:
    """What a test pays, in a real pytest session of the plugin's ``lambda_freeze`` fixture (one process, tests one
    after another): ``function(...)`` then the first invoke; the whole test (setup, call, teardown, as pytest times
    them); and a test that starts a function and invokes nothing. The session's first test apart: nothing was started
    ahead of it."""
    code = Path(__file__).resolve().parent / "functions" / "trivial"
    with tempfile.TemporaryDirectory(prefix="lambda-freeze-bench-") as tmp:
        (Path(tmp) / "test_bench.py").write_text(_PYTEST_SESSION)
        (Path(tmp) / "conftest.py").write_text(_PYTEST_TIMES)
        out = Path(tmp) / "times.jsonl"
        env = {**os.environ, "BENCH_CODE": str(code), "BENCH_OUT": str(out), "BENCH_TESTS": str(args.cold_runs + 1)}
        if args.src:
            env["PYTHONPATH"] = str(args.src)
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-p", "no:randomly",
                        "-p", "no:xdist", "test_bench.py"], cwd=tmp, env=env, check=True, capture_output=True)
        after = resource.getrusage(resource.RUSAGE_CHILDREN)  # the session and every process it started and reaped
        records = [json.loads(line) for line in out.read_text().splitlines()]
    first = [r["ns"] for r in records if r["figure"] == "first_response"]
    whole: dict[str, int] = {}
    for r in records:
        if r["figure"] in ("setup", "call", "teardown"):
            whole[r["test"]] = whole.get(r["test"], 0) + r["ns"]
    one = [ns for test, ns in whole.items() if "test_one_invoke" in test]
    none = [ns for test, ns in whole.items() if "test_no_invoke" in test]
    cpu_s = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return {"runs": len(first) - 1, "first_test_function_to_first_response_ms": first[0] / 1e6,
            "function_to_first_response_ms": _median_ms(first[1:]), "test_with_one_invoke_ms": _median_ms(one[1:]),
            "setup_function_teardown_ms": _median_ms(none), "cpu_ms_per_test": cpu_s * 1000 / len(whole)}


def bench_serve_start(args: argparse.Namespace) -> dict[str, object]:
    """``lambda-freeze serve`` launch → serving, beside the interpreter importing asyncio and uvloop."""
    serving: list[int] = []
    floor: list[int] = []
    for _ in range(args.cold_runs):
        server = Server.lambda_freeze("app.handler", freezer="auto", src=args.src, extra_args=("--no-reload",))
        server.start()
        serving.append(server.ready_ns - server.spawned_ns)
        server.stop()
        t0 = time.perf_counter_ns()
        subprocess.run([sys.executable, "-c", "import asyncio, uvloop"], check=True)
        floor.append(time.perf_counter_ns() - t0)
    return {"runs": len(serving), "launch_to_serving_ms": _median_ms(serving),
            "import_asyncio_uvloop_ms": _median_ms(floor)}


# ------------------------------------------------------------------------------------------------- output
def _measured_reference(rie: dict[str, object]) -> dict[str, float]:
    """RIE's figures from its own run here, where that run measured them; the issue's figures for the rest."""
    reference = dict(REFERENCE)
    warm, echo, cold = rie.get("warm"), rie.get("echo_1mb"), rie.get("cold")
    if warm:
        reference["warm_p50_ms"] = warm["p50_ms"]  # type: ignore[index]
        reference["invokes_per_s"] = warm["invokes_per_s"]  # type: ignore[index]
    if echo:
        reference["echo_1mb_p50_ms"] = echo["p50_ms"]  # type: ignore[index]
    if cold:
        reference["cold_start_ms"] = cold["median"]["launch_to_first_response_ms"]  # type: ignore[index]
    return reference


def _targets(results: dict[str, dict[str, object]], reference: dict[str, float]) -> list[dict[str, object]]:
    rows = []
    for requested, r in results.items():
        if requested == "rie":
            continue
        warm, echo, cold = r.get("warm"), r.get("echo_1mb"), r.get("cold")
        name = (warm or echo or cold or {}).get("freezer", requested)  # type: ignore[union-attr]
        checks = []
        if warm:
            checks.append(("warm p50 (ms)", warm["p50_ms"], reference["warm_p50_ms"], "<="))
            checks.append(("invokes/s", warm["invokes_per_s"], reference["invokes_per_s"], ">="))
        if echo:
            checks.append(("1 MB echo p50 (ms)", echo["p50_ms"], reference["echo_1mb_p50_ms"], "<="))
        if cold:
            checks.append(
                ("cold start (ms)", cold["median"]["launch_to_first_response_ms"], reference["cold_start_ms"], "<=")
            )
        for label, ours, ref, op in checks:
            met = ours <= ref if op == "<=" else ours >= ref
            rows.append({"freezer": name, "figure": label, "ours": ours, "rie": ref, "met": met})
    return rows


def _fmt_cpu(cpu: dict[str, float | None]) -> str:
    return "  ".join(f"{k} {v:6.0f}" if v is not None else f"{k}      ?" for k, v in cpu.items())


def print_text(report: dict[str, object]) -> None:
    cfg = report["config"]
    print(
        f"lambda-freeze benchmark: {cfg['cpus']} CPUs, Python {cfg['python']}, client {cfg['client']}, "
        f"{cfg['invokes']} warm invokes after {cfg['warmup']} warm-up, {cfg['echo_invokes']} × 1 MB echo, "
        f"{cfg['cold_runs']} cold starts" + (f", emulator from {cfg['src']}" if cfg["src"] else "")
    )
    load0, load1 = cfg["loadavg_at_start"], cfg["loadavg_at_end"]
    print(
        f"load average (1 min) {load0[0]:.2f} at start, {load1[0]:.2f} at end"
        + ("  -- other work on this machine: figures are inflated" if max(load0[0], load1[0]) > 1.5 else "")
    )
    floor = report.get("floor")
    if floor:
        print(
            f"\nfloor (a bare uvloop protocol answering at once, same client): p50 {floor['p50_ms']:.3f} ms  "
            f"p90 {floor['p90_ms']:.3f}  p99 {floor['p99_ms']:.3f}  {floor['invokes_per_s']:,.0f} req/s   "
            f"CPU µs per request: {_fmt_cpu(floor['cpu_us_per_request'])}"
        )
    results: dict[str, dict[str, object]] = report["freezers"]  # type: ignore[assignment]
    if any(r.get("warm") for r in results.values()):
        print("\nwarm invoke, trivial handler (ms)")
        print(f"  {'freezer':<9} {'p50':>7} {'p90':>7} {'p99':>7} {'max':>7} {'invokes/s':>10}   CPU µs per invoke")
    for r in results.values():
        w = r.get("warm")
        if w:
            print(
                f"  {w['freezer']:<9} {w['p50_ms']:7.3f} {w['p90_ms']:7.3f} {w['p99_ms']:7.3f} {w['max_ms']:7.2f} "
                f"{w['invokes_per_s']:10,.0f}   {_fmt_cpu(w['cpu_us_per_invoke'])}"
            )
    if any(r.get("echo_1mb") for r in results.values()):
        print("\n1 MB echo (ms)")
        print(f"  {'freezer':<9} {'p50':>7} {'p90':>7} {'p99':>7} {'invokes/s':>10}   CPU µs per invoke")
    for r in results.values():
        e = r.get("echo_1mb")
        if e:
            print(
                f"  {e['freezer']:<9} {e['p50_ms']:7.2f} {e['p90_ms']:7.2f} {e['p99_ms']:7.2f} "
                f"{e['invokes_per_s']:10,.0f}   {_fmt_cpu(e['cpu_us_per_invoke'])}"
            )
    if any(r.get("cold") for r in results.values()):
        print("\ncold start, median (ms)")
        print(
            f"  {'freezer':<9} {'launch→1st response':>20} {'launch→serving':>15} {'1st invoke':>11} "
            f"{'Init Duration':>14} {'2nd invoke':>11}"
        )
    for r in results.values():
        c = r.get("cold")
        if c:
            m = c["median"]

            def f(key: str, m: dict[str, float | None] = m) -> str:
                return f"{m[key]:.1f}" if m[key] is not None else "?"

            print(
                f"  {c['freezer']:<9} {f('launch_to_first_response_ms'):>20} {f('launch_to_serving_ms'):>15} "
                f"{f('first_invoke_ms'):>11} {f('init_duration_ms'):>14} {f('second_invoke_ms'):>11}"
            )
    starts = report.get("starts")
    if starts:
        print_starts(starts)  # type: ignore[arg-type]
    where = "measured here in this run" if "rie" in results else "the issue's figures for this machine kind"
    print(f"\nagainst AWS RIE, {where} (RIE does not freeze; target: at or below it with freezing on)")
    print(f"  {'freezer':<9} {'figure':<20} {'ours':>9} {'RIE':>9}  target")
    for row in report["targets"]:  # type: ignore[union-attr]
        ours = f"{row['ours']:,.0f}" if row["figure"] == "invokes/s" else f"{row['ours']:.2f}"
        rie = f"{row['rie']:,.0f}" if row["figure"] == "invokes/s" else f"{row['rie']:.2f}"
        print(f"  {row['freezer']:<9} {row['figure']:<20} {ours:>9} {rie:>9}  {'met' if row['met'] else 'NOT met'}")


def print_starts(starts: dict[str, object]) -> None:
    new_env: dict[str, dict[str, object]] = starts["new_environment"]  # type: ignore[assignment]
    rie = new_env.get("rie")
    print("\nnew environment in a running emulator, caller's request → response, median (freezer and memory limit on)")
    print(f"  {'':<22} {'median':>8} {'p90':>8} {'Init Duration':>14} {'runs':>5}   vs RIE")
    for kind, r in new_env.items():
        label = {"standby": "lambda-freeze", "no-standby": "  --no-standby", "rie": "RIE (first invoke)"}[kind]
        ratio = f"{r['median_ms'] / rie['median_ms']:.2f}×" if rie and kind != "rie" else ""  # type: ignore[operator]
        p90 = f"{r['p90_ms']:.1f}" if r.get("p90_ms") is not None else "?"
        init = f"{r['init_ms']:.1f}" if r.get("init_ms") is not None else "?"
        print(f"  {label:<22} {r['median_ms']:8.1f} {p90:>8} {init:>14} {r['runs']:>5}   {ratio}")
    if rie is None:
        print("  RIE: not measured (no --rie binary)")
    pytest_figures = starts.get("pytest")
    if pytest_figures:
        p: dict[str, float] = pytest_figures  # type: ignore[assignment]
        print("\npytest, a session of the lambda_freeze fixture, median of its tests but the first (ms)")
        print(f"  function(...) → first response   {p['function_to_first_response_ms']:8.1f}"
              f"   (the session's first test: {p['first_test_function_to_first_response_ms']:.1f})")
        print(f"  a test with one invoke (setup + call + teardown, as pytest times them)   "
              f"{p['test_with_one_invoke_ms']:8.1f}")
        print(f"  per-test overhead (setup + function(...) + teardown, no invoke)   "
              f"{p['setup_function_teardown_ms']:8.1f}   ({p['runs']} runs)")
        if rie is not None:
            print(f"  RIE launch → first response      {starts['rie_launch_to_first_response_ms']:8.1f}")
    serve = starts.get("serve")
    if serve:
        s: dict[str, float] = serve  # type: ignore[assignment]
        print(f"\nserve start, median: launch → serving {s['launch_to_serving_ms']:.1f} ms; "
              f"python -c 'import asyncio, uvloop' {s['import_asyncio_uvloop_ms']:.1f} ms "
              f"({s['launch_to_serving_ms'] / s['import_asyncio_uvloop_ms']:.2f}× the floor; {s['runs']} runs)")


def bench_new_env_rounds(args: argparse.Namespace, progress: Callable[[str], None]) -> list[dict[str, object]]:
    """The new-environment figure alone, ``--rounds`` rounds of ``--cold-runs``: within a round ours (the standby)
    and RIE's take turns run by run, who goes first alternating, so that both see the machine's same moments."""
    rounds: list[dict[str, object]] = []
    for i in range(args.rounds):
        progress(f"new environment, round {i + 1}/{args.rounds} ...")
        samples: dict[str, list[int]] = {"standby": [], "rie": []}
        inits: dict[str, list[float]] = {"standby": [], "rie": []}
        server = _new_env_server("standby", args)
        with server:
            client = RawClient(server.host, server.port)
            try:
                for run in range(args.cold_runs):
                    order = ["standby", "rie"] if run % 2 == 0 else ["rie", "standby"]
                    for kind in order:
                        if kind == "rie" and args.rie is None:
                            continue
                        if kind == "rie":  # ours quiet meanwhile: its last environment gone, its standby made
                            _settle(server, client)
                        elapsed, init = _ours_new_env(server, client) if kind == "standby" else _rie_new_env(args)
                        samples[kind].append(elapsed)
                        inits[kind].extend([init] if init is not None else [])
            finally:
                client.close()
        figures: dict[str, object] = {
            kind: _new_env_figures(kind, samples[kind], inits[kind]) for kind in samples if samples[kind]
        }
        rounds.append(figures | {"loadavg": os.getloadavg()[0]})
    return rounds


def print_new_env_rounds(rounds: list[dict[str, object]]) -> None:
    print("\nnew environment in a running emulator, caller's request → response (freezer and memory limit on), ms")
    print(f"  {'round':<6} {'ours':>7} {'init':>7} {'RIE':>7} {'init':>7} {'ratio':>7} {'load':>6}")
    ratios, ours_all, rie_all = [], [], []
    for i, r in enumerate(rounds, 1):
        ours: dict[str, float] = r["standby"]  # type: ignore[assignment]
        rie: dict[str, float] | None = r.get("rie")  # type: ignore[assignment]
        ours_all.append(ours["median_ms"])
        line = f"  {i:<6} {ours['median_ms']:7.1f} {ours['init_ms'] or 0:7.1f}"
        if rie is not None:
            rie_all.append(rie["median_ms"])
            ratios.append(ours["median_ms"] / rie["median_ms"])
            line += f" {rie['median_ms']:7.1f} {rie['init_ms'] or 0:7.1f} {ratios[-1]:6.2f}×"
        print(f"{line} {r['loadavg']:6.2f}")
    summary = f"  medians of the rounds: ours {statistics.median(ours_all):.1f}"
    if ratios:
        summary += (f", RIE {statistics.median(rie_all):.1f}, ratio {statistics.median(ratios):.2f}× "
                    f"({min(ratios):.2f}-{max(ratios):.2f})")
    print(summary)


def bench_pytest_rounds(args: argparse.Namespace, progress: Callable[[str], None]) -> list[dict[str, object]]:
    """The pytest figures alone, ``--rounds`` rounds: within a round a pytest session of ``--cold-runs`` + 1 tests and
    as many RIE launches (who goes first alternating), so that both see the machine's same moments."""
    rounds: list[dict[str, object]] = []
    for i in range(args.rounds):
        progress(f"pytest, round {i + 1}/{args.rounds} ...")
        figures: dict[str, object] = {"loadavg": os.getloadavg()[0]}
        for side in (("pytest", "rie") if i % 2 == 0 else ("rie", "pytest")):
            if side == "pytest":
                figures["pytest"] = bench_pytest(args)
            elif args.rie is not None:
                cold = bench_cold("rie", args)["median"]
                figures["rie_launch_to_first_response_ms"] = cold["launch_to_first_response_ms"]  # type: ignore[index]
        rounds.append(figures)
    return rounds


def print_pytest_rounds(rounds: list[dict[str, object]]) -> None:
    print("\npytest, a session of the lambda_freeze fixture, medians of its tests but the first, ms")
    print(f"  {'round':<6} {'first':>7} {'test':>7} {'no inv.':>8} {'1st test':>9} {'RIE':>7} {'ratio':>7} {'load':>6}")
    columns: dict[str, list[float]] = {"first": [], "test": [], "none": [], "cold": [], "cpu": [], "rie": [],
                                       "ratio": []}
    for i, r in enumerate(rounds, 1):
        p: dict[str, float] = r["pytest"]  # type: ignore[assignment]
        rie: float | None = r.get("rie_launch_to_first_response_ms")  # type: ignore[assignment]
        values = {"first": p["function_to_first_response_ms"], "test": p["test_with_one_invoke_ms"],
                  "none": p["setup_function_teardown_ms"], "cold": p["first_test_function_to_first_response_ms"],
                  "cpu": p["cpu_ms_per_test"]}
        line = (f"  {i:<6} {values['first']:7.1f} {values['test']:7.1f} {values['none']:8.1f} "
                f"{values['cold']:9.1f}")
        if rie is not None:
            values["rie"], values["ratio"] = rie, values["first"] / rie
            line += f" {rie:7.1f} {values['ratio']:6.2f}×"
        for key, value in values.items():
            columns[key].append(value)
        print(f"{line} {r['loadavg']:6.2f}")
    median = {key: statistics.median(v) for key, v in columns.items() if v}
    summary = (f"  medians of the rounds: function(...) → first response {median['first']:.1f}, a whole test "
               f"{median['test']:.1f}, a test with no invoke {median['none']:.1f}, the session's first test "
               f"{median['cold']:.1f}, CPU per test {median['cpu']:.1f} (the session and all it started)")
    if columns["ratio"]:
        summary += (f"; RIE launch → first response {median['rie']:.1f}, ratio {median['ratio']:.2f}× "
                    f"({min(columns['ratio']):.2f}-{max(columns['ratio']):.2f})")
    print(summary)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="smoke run: 200 invokes, 20 × 1 MB, 3 cold starts")
    parser.add_argument("--json", action="store_true", help="print one JSON document instead of tables")
    parser.add_argument("--freezer", action="append", choices=FREEZERS, help="only these freezers (repeatable)")
    parser.add_argument("--invokes", type=int, help="warm invokes per freezer (default 2000; --quick 200)")
    parser.add_argument("--warmup", type=int, help="warm-up invokes, the cold one included (default 200; --quick 50)")
    parser.add_argument("--echo-invokes", type=int, help="1 MB echo invokes (default 200; --quick 20)")
    parser.add_argument("--cold-runs", type=int, help="cold starts per freezer (default 10; --quick 3)")
    parser.add_argument("--client", choices=sorted(CLIENTS), default="raw", help="HTTP client (default raw)")
    parser.add_argument(
        "--skip", action="append", default=[], choices=("floor", "warm", "echo", "cold", "starts")
    )
    parser.add_argument("--only-starts", action="store_true",
                        help="only the new-environment, pytest and serve-start figures")
    parser.add_argument("--only-new-env", action="store_true",
                        help="only the new-environment figure (with the standby, and RIE's with --rie)")
    parser.add_argument("--only-pytest", action="store_true",
                        help="only the pytest figures (a real pytest session), beside RIE's launch with --rie")
    parser.add_argument("--rounds", type=int, default=1,
                        help="with --only-new-env: rounds of --cold-runs each, ours and RIE's taking turns run by run; "
                        "with --only-pytest: rounds of one session and as many RIE launches; the figures are the "
                        "medians of the rounds' medians, each ratio taken within its round")
    parser.add_argument(
        "--rie",
        type=Path,
        help="also measure AWS's Runtime Interface Emulator (this aws-lambda-rie binary) running the same function, "
        "and compare against those figures instead of the issue's",
    )
    parser.add_argument(
        "--src", type=Path, help="run the emulator from this source tree (python -m emulator.cli), to compare versions"
    )
    args = parser.parse_args(argv)
    quick = args.quick
    args.invokes = args.invokes or (200 if quick else 2000)
    args.warmup = args.warmup or (50 if quick else 200)
    args.echo_invokes = args.echo_invokes or (20 if quick else 200)
    args.echo_warmup = 5 if quick else 20
    args.cold_runs = args.cold_runs or (3 if quick else 10)
    freezers = args.freezer or list(FREEZERS)
    if args.rie is not None:
        if not os.access(args.rie, os.X_OK):
            parser.error(f"--rie {args.rie}: not an executable")
        freezers.append("rie")

    def progress(message: str) -> None:
        if not args.json:
            print(message, file=sys.stderr, flush=True)

    report: dict[str, object] = {
        "config": {
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
            "kernel": platform.release(),
            "client": args.client,
            "invokes": args.invokes,
            "warmup": args.warmup,
            "echo_invokes": args.echo_invokes,
            "cold_runs": args.cold_runs,
            "src": str(args.src) if args.src else None,
            "loadavg_at_start": os.getloadavg(),
        },
        "reference_rie": REFERENCE,
    }
    if args.only_new_env:
        report["new_environment_rounds"] = rounds = bench_new_env_rounds(args, progress)
        return emit(report, args.json, lambda: print_new_env_rounds(rounds))
    if args.only_pytest:
        report["pytest_rounds"] = pytest_rounds = bench_pytest_rounds(args, progress)
        return emit(report, args.json, lambda: print_pytest_rounds(pytest_rounds))
    if args.only_starts:
        args.skip = ["floor", "warm", "echo", "cold"]
        freezers = ["rie"] if args.rie is not None else []
    if "floor" not in args.skip:
        progress("floor ...")
        report["floor"] = bench_floor(args)
    results: dict[str, dict[str, object]] = {}
    for freezer in freezers:
        r: dict[str, object] = {}
        if "warm" not in args.skip:
            progress(f"{freezer}: warm invoke ...")
            r["warm"] = bench_warm(freezer, args)
        if "echo" not in args.skip:
            progress(f"{freezer}: 1 MB echo ...")
            r["echo_1mb"] = bench_echo(freezer, args)
        if "cold" not in args.skip:
            progress(f"{freezer}: cold start ...")
            r["cold"] = bench_cold(freezer, args)
        results[freezer] = r
    report["freezers"] = results
    if "starts" not in args.skip:
        progress("new environment, pytest, serve start ...")
        kinds = ["standby", "no-standby", *(["rie"] if args.rie is not None else [])]
        starts: dict[str, object] = {"new_environment": {kind: bench_new_env(kind, args) for kind in kinds}}
        starts["pytest"] = bench_pytest(args)
        starts["serve"] = bench_serve_start(args)
        if args.rie is not None:
            starts["rie_launch_to_first_response_ms"] = bench_cold("rie", args)["median"]["launch_to_first_response_ms"]  # type: ignore[index]
        report["starts"] = starts
    reference = _measured_reference(results["rie"]) if "rie" in results else REFERENCE
    report["reference_rie"] = reference
    report["targets"] = _targets(results, reference)
    report["config"]["loadavg_at_end"] = os.getloadavg()  # type: ignore[index]
    return emit(report, args.json, lambda: print_text(report))


if __name__ == "__main__":
    sys.exit(main())

"""Many environments at once: throughput under 64 concurrent callers, and the emulator's cost per frozen environment.

    python benchmarks/many_environments.py            # the figures of the issue: 64 callers 20 s, 500 environments
    python benchmarks/many_environments.py --quick    # a short run: 16 callers 5 s, 50 environments

1. ``--clients`` callers (threads, each one keep-alive connection) invoke a trivial function with reserved
   concurrency ``--clients`` for ``--seconds``: errors, invokes/s, p50/p99. Reference: 1.5 x RIE's sequential
   1,400 invokes/s (RIE runs one environment and crashes on a second concurrent invocation). With ``--client wrk``
   the callers are wrk's connections instead (``apt-get install wrk``): Python caller threads contend for the GIL
   and take CPU from the emulator on a small machine; wrk's event loop costs a fraction of it. Every
   environment is initialised first (``--prewarm``), so the figure is warm throughput; a response that is not 200,
   or that carries ``X-Amz-Function-Error``, counts as an error.
2. ``--environments`` environments initialised at start (``--prewarm``) and frozen: the emulator's RSS per
   environment beyond one environment's (the runtimes' own memory is theirs), and the warm invoke p50 with that
   many frozen against one frozen. Targets: at most 1 MB per environment; p50 within 1.2x.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _harness import INVOKE_PATH, Latencies, RawClient, Server, await_frozen, environments, percentile, timed_posts

RIE_SEQUENTIAL_PER_S = 1400.0


def rss_kb(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise RuntimeError(f"no VmRSS for {pid}")


def concurrent_throughput(clients: int, seconds: float, freezer: str) -> dict[str, object]:
    extra = ("--reserved-concurrency", str(clients), "--timeout", "10")
    with Server.lambda_freeze("app.handler", freezer=freezer, extra_args=extra).start() as server:
        # Warm up: one environment per caller, each initialised once.
        latencies: list[list[float]] = [[] for _ in range(clients)]
        errors = [0] * clients
        deadline = [0.0]
        ready = threading.Barrier(clients + 1)

        def caller(index: int) -> None:
            client = RawClient(server.host, server.port)
            samples = latencies[index]
            try:
                client.post(INVOKE_PATH, b"{}")  # this caller's cold start, outside the measurement
                ready.wait()
                while time.perf_counter() < deadline[0]:
                    t0 = time.perf_counter()
                    status, _ = client.post(INVOKE_PATH, b"{}")
                    samples.append((time.perf_counter() - t0) * 1000)
                    if status != 200:
                        errors[index] += 1
            finally:
                client.close()

        threads = [threading.Thread(target=caller, args=(i,)) for i in range(clients)]
        for thread in threads:
            thread.start()
        deadline[0] = time.perf_counter() + 3600
        ready.wait()
        started = time.perf_counter()
        deadline[0] = started + seconds
        for thread in threads:
            thread.join()
        wall_s = time.perf_counter() - started
        envs = environments(server)
    merged = sorted(sample for samples in latencies for sample in samples)
    return {
        "clients": clients,
        "seconds": round(wall_s, 2),
        "invokes": len(merged),
        "errors": sum(errors),
        "invokes_per_s": round(len(merged) / wall_s, 1),
        "p50_ms": round(percentile(merged, 50), 3),
        "p99_ms": round(percentile(merged, 99), 3),
        "environments": len(envs),
        "target_invokes_per_s": 1.5 * RIE_SEQUENTIAL_PER_S,
    }


WRK_SCRIPT = """
wrk.method = "POST"
wrk.body = "{}"
wrk.headers["Content-Type"] = "application/json"
local threads = {}
function setup(thread) table.insert(threads, thread) end
function init(args) errors = 0 end
function response(status, headers, body)
  if status ~= 200 or headers["X-Amz-Function-Error"] ~= nil then errors = errors + 1 end
end
function done(summary, latency, requests)
  local failed = 0
  for _, thread in ipairs(threads) do failed = failed + thread:get("errors") end
  io.write(string.format("RESULT %d %d %.3f %.3f %.3f\\n", summary.requests, failed + summary.errors.status,
    summary.duration / 1e6, latency:percentile(50) / 1e3, latency:percentile(99) / 1e3))
end
"""


def wrk_throughput(clients: int, seconds: float, freezer: str) -> dict[str, object]:
    wrk = shutil.which("wrk")
    if wrk is None:
        raise SystemExit("--client wrk needs wrk on PATH (apt-get install wrk)")
    extra = ("--reserved-concurrency", str(clients), "--prewarm", str(clients), "--timeout", "10")
    with Server.lambda_freeze("app.handler", freezer=freezer, extra_args=extra).start(timeout_s=120) as server:
        await_frozen(server, clients, timeout_s=max(60.0, clients * 1.0))
        with tempfile.NamedTemporaryFile("w", suffix=".lua") as script:
            script.write(WRK_SCRIPT)
            script.flush()
            url = f"http://{server.host}:{server.port}{INVOKE_PATH}"
            argv = [wrk, "-t1", f"-c{clients}", f"-d{max(1, round(seconds))}s", "-s", script.name, url]
            out = subprocess.run(argv, capture_output=True, text=True, check=True).stdout
        envs = environments(server)
    fields = next(line for line in out.splitlines() if line.startswith("RESULT")).split()
    invokes, errors, wall_s, p50_ms, p99_ms = int(fields[1]), int(fields[2]), *map(float, fields[3:])
    return {
        "client": "wrk",
        "clients": clients,
        "seconds": round(wall_s, 2),
        "invokes": invokes,
        "errors": errors,
        "invokes_per_s": round(invokes / wall_s, 1),
        "p50_ms": round(p50_ms, 3),
        "p99_ms": round(p99_ms, 3),
        "environments": len(envs),
        "target_invokes_per_s": 1.5 * RIE_SEQUENTIAL_PER_S,
    }


def frozen_environments(count: int, freezer: str, invokes: int) -> dict[str, object]:
    results: dict[str, object] = {"environments": count}
    measured: dict[int, tuple[int, Latencies]] = {}
    for prewarm in (1, count):
        extra = ("--prewarm", str(prewarm), "--reserved-concurrency", str(count))
        with Server.lambda_freeze("app.handler", freezer=freezer, extra_args=extra).start(timeout_s=120) as server:
            init_s = await_frozen(server, prewarm, timeout_s=max(60.0, prewarm * 1.0))
            client = RawClient(server.host, server.port)
            try:
                timed_posts(client, INVOKE_PATH, b"{}", 200)  # warm-up
                rss = rss_kb(server.pid)
                latencies = timed_posts(client, INVOKE_PATH, b"{}", invokes)
            finally:
                client.close()
            measured[prewarm] = (rss, latencies)
            results[f"init_all_s_{prewarm}"] = round(init_s, 2)
    rss_one, lat_one = measured[1]
    rss_many, lat_many = measured[count]
    per_env_kb = (rss_many - rss_one) / (count - 1)
    p50_one = lat_one.summary()["p50_ms"]
    p50_many = lat_many.summary()["p50_ms"]
    results.update(
        {
            "emulator_rss_mb_1": round(rss_one / 1024, 1),
            f"emulator_rss_mb_{count}": round(rss_many / 1024, 1),
            "emulator_rss_kb_per_environment": round(per_env_kb, 1),
            "p50_ms_1_frozen": round(p50_one, 3),
            f"p50_ms_{count}_frozen": round(p50_many, 3),
            "p50_ratio": round(p50_many / p50_one, 3),
            "target_kb_per_environment": 1024,
            "target_p50_ratio": 1.2,
        }
    )
    return results


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--clients", type=int, default=64)
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--environments", type=int, default=500)
    parser.add_argument("--invokes", type=int, default=2000, help="sequential invokes for the p50 comparison")
    parser.add_argument("--freezer", default="auto")
    parser.add_argument("--quick", action="store_true", help="16 callers for 5 s, 50 environments")
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--client", choices=("threads", "wrk"), default="threads", help="who the callers are")
    parser.add_argument("--skip-frozen", action="store_true", help="only the throughput part")
    args = parser.parse_args(argv)
    if args.quick:
        args.clients, args.seconds, args.environments, args.invokes = 16, 5.0, 50, 500
    throughput = wrk_throughput if args.client == "wrk" else concurrent_throughput
    report = {"throughput": throughput(args.clients, args.seconds, args.freezer)}
    print(json.dumps(report["throughput"]), file=sys.stderr, flush=True)  # kept even if the second part fails
    if args.skip_frozen:
        return 0
    report["frozen"] = frozen_environments(args.environments, args.freezer, args.invokes)
    if args.json:
        print(json.dumps(report, indent=2))
        return 0
    t, f = report["throughput"], report["frozen"]
    n = args.environments
    print(f"{t['clients']} concurrent callers, {t['seconds']} s, reserved concurrency {t['clients']}:")
    print(
        f"  {t['invokes']} invokes, {t['errors']} errors, {t['invokes_per_s']} invokes/s "
        f"(target >= {t['target_invokes_per_s']:.0f}), p50 {t['p50_ms']} ms, p99 {t['p99_ms']} ms, "
        f"{t['environments']} environments"
    )
    print(f"{n} environments initialised and frozen:")
    print(
        f"  emulator RSS {f['emulator_rss_mb_1']} MB with 1, {f[f'emulator_rss_mb_{n}']} MB with {n}: "
        f"{f['emulator_rss_kb_per_environment']} KB per environment (target <= 1024)"
    )
    print(
        f"  warm invoke p50 {f['p50_ms_1_frozen']} ms with 1 frozen, {f[f'p50_ms_{n}_frozen']} ms with {n}: "
        f"{f['p50_ratio']}x (target <= 1.2x); all {n} initialised in {f[f'init_all_s_{n}']} s"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())

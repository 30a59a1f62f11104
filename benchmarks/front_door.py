"""The HTTP front door against a direct Invoke API call of the same function, and against serverless-offline, in the
same run.

    python benchmarks/front_door.py            # 2,000 sequential requests per target in 20 rounds, 64 clients for 20 s
    python benchmarks/front_door.py --quick    # 300 requests per target in 5 rounds, 16 clients for 5 s
    python benchmarks/front_door.py --sls /tmp/sls/node_modules/.bin/sls --json
    python benchmarks/front_door.py --gap-ms 10 --requests 600   # a pause after each request, as a user's clicks
    python benchmarks/front_door.py --src /path/to/other/checkout # that tree's emulator, to compare versions

1. Warm p50 over one keep-alive connection per target, one request at a time: ``GET /hello`` through an HTTP API
   route (payload 2.0; the trivial handler's ``{"ok": true}`` is answered as 2.0's inferred 200 response) against
   ``POST`` of the same 2.0 event to the Invoke API, and ``GET /hello`` on serverless-offline serving the same
   handler when it is installed. Interleaved rounds: in each, the targets take turns in blocks of 10 requests, in
   an order that rotates from round to round; each figure is the median of the rounds' p50s, each ratio the median
   of the rounds' ratios, so load on the shared machine falls on all alike. Targets: front door p50 <= 1.3x Invoke
   API p50, and lower than serverless-offline's (with freezing on: the front door's environments freeze after every
   request).
2. ``--clients`` keep-alive clients (threads) for ``--seconds`` against the front door, reserved concurrency equal
   to the clients (every environment initialised first): errors (anything but 200), requests/s, p50/p99.
   Target: 0 errors.

serverless-offline (npm; not in CI) is serverless v3 (v4 needs a login) with serverless-offline 13 (14 wants v4),
installed outside the tree: ``npm install --prefix /tmp/sls serverless@3 serverless-offline@13``, then
``--sls /tmp/sls/node_modules/.bin/sls`` (or ``sls`` on PATH). It keeps the handler's Python process running
between requests: nothing freezes there.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _harness import (
    FUNCTIONS,
    ROOT,
    HttpError,
    RawClient,
    Server,
    await_frozen,
    cpu_ns,
    lambda_freeze_command,
    percentile,
)

TARGET_RATIO = 1.3
FUNCTION = "web"


def event_for(api_port: int) -> bytes:
    """The event the front door builds for ``GET /hello``, for the Invoke API side to send (sizes alike)."""
    return json.dumps(
        {
            "version": "2.0",
            "routeKey": "GET /hello",
            "rawPath": "/hello",
            "rawQueryString": "",
            "headers": {"host": f"127.0.0.1:{api_port}", "content-length": "0"},
            "requestContext": {
                "accountId": "000000000000",
                "apiId": "local",
                "domainName": "127.0.0.1",
                "domainPrefix": "127",
                "http": {"method": "GET", "path": "/hello", "protocol": "HTTP/1.1", "sourceIp": "127.0.0.1"},
                "requestId": "00000000-0000-0000-0000-000000000000",
                "routeKey": "GET /hello",
                "stage": "$default",
                "time": "07/Dec/2026:00:00:00 +0000",
                "timeEpoch": 0,
            },
            "isBase64Encoded": False,
        }
    ).encode()


def start(config_dir: Path, clients: int, freezer: str, src: Path | None = None) -> tuple[Server, int]:
    config = config_dir / "front_door.toml"
    config.write_text(
        f"""
[server]
port = 0
api_port = 0
freezer = "{freezer}"

[functions.{FUNCTION}]
code_dir = "{FUNCTIONS / "trivial"}"
handler = "app.handler"
routes = ["GET /hello"]
reserved_concurrency = {clients}
prewarm = {clients}
timeout = 10
"""
    )
    command, env = lambda_freeze_command(src)
    # ``python -m`` puts the working directory first on sys.path: run from the tree being measured.
    server = Server([*command, "serve", "--config", str(config)], env=env, cwd=src or ROOT).start()
    try:
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:  # the front door line follows the serving line
            for line in server.stderr_lines:
                if "HTTP front door on " in line:
                    # every prewarmed environment initialised and frozen (ready, with freezer "none"): no request
                    # meets an INIT
                    await_frozen(server, clients, timeout_s=max(60.0, clients * 1.0), states=("frozen", "ready"))
                    return server, int(line.rsplit(":", 1)[1])
            time.sleep(0.01)  # a benchmark waiting on a child's output
        raise RuntimeError(f"no front door line: {''.join(server.stderr_lines)}")
    except BaseException:
        server.stop()  # the server and its environments end with a failed start, never left behind
        raise


def sequential(
    targets: dict[str, RawClient | None],
    requests: dict[str, bytes],
    n: int,
    rounds: int,
    cpu_pids: dict[str, int],
    block: int = 10,
    gap_s: float = 0.0,
) -> dict:
    """Each target's warm latency, one request at a time on its own keep-alive connection, in ``rounds`` rounds of
    ``n // rounds`` requests each; within a round the targets take turns in blocks of ``block`` requests, in an
    order that rotates from round to round. A figure is the median of the rounds' p50s (a ratio: the median of the
    rounds' ratios), so that a burst of load on the shared machine moves one round, not the result."""
    names = [name for name, client in targets.items() if client is not None]
    per_round = max(1, n // rounds)
    round_p50: dict[str, list[float]] = {name: [] for name in names}
    pooled: dict[str, list[float]] = {name: [] for name in names}
    errors = dict.fromkeys(names, 0)
    cpu_used = dict.fromkeys(cpu_pids, 0)  # ns of CPU the serving process spent on the target's requests
    clock = time.perf_counter_ns
    for name in names:  # warm every path, and check that each answers what the handler returns
        client = targets[name]
        assert client is not None
        for _ in range(20):
            status, body = client.send(requests[name])
        if status != 200 or json.loads(body) != {"ok": True}:
            raise HttpError(f"{name}: {status} {body[:200]!r}")
    for index in range(rounds):
        order = names[index % len(names) :] + names[: index % len(names)]
        samples: dict[str, list[float]] = {name: [] for name in names}
        done = 0
        while done < per_round:  # the targets take turns, ``block`` requests each: A B C A B C ...
            count = min(block, per_round - done)
            for name in order:
                client, request, values = targets[name], requests[name], samples[name]
                assert client is not None
                cpu_before = cpu_ns(cpu_pids[name]) if name in cpu_pids else None
                for _ in range(count):
                    t0 = clock()
                    status, _ = client.send(request)
                    values.append((clock() - t0) / 1e6)
                    errors[name] += status != 200
                    if gap_s:
                        time.sleep(gap_s)  # a pause between requests, as a user's clicks have (not timed)
                if cpu_before is not None:
                    cpu_used[name] += (cpu_ns(cpu_pids[name]) or 0) - cpu_before
            done += count
        for name, values in samples.items():
            pooled[name] += values
            values.sort()
            round_p50[name].append(percentile(values, 50))
    out: dict = {"rounds": rounds, "requests_per_round": per_round, "errors": errors}
    for name, used in cpu_used.items():
        out[f"{name}_server_cpu_us"] = used / 1e3 / (per_round * rounds)
    for name in names:
        out[f"{name}_p50_ms"] = statistics.median(round_p50[name])
        out[f"{name}_round_p50s_ms"] = [round(v, 3) for v in round_p50[name]]
        pooled[name].sort()
        out[f"{name}_p99_ms"] = percentile(pooled[name], 99)
    ratios = [f / i for f, i in zip(round_p50["front_door"], round_p50["invoke_api"], strict=True)]
    out["ratio_p50"] = statistics.median(ratios)
    out["ratio_p50_range"] = [round(min(ratios), 3), round(max(ratios), 3)]
    if "serverless_offline" in names:
        versus = [f / o for f, o in zip(round_p50["front_door"], round_p50["serverless_offline"], strict=True)]
        out["vs_offline_p50"] = statistics.median(versus)
        out["vs_offline_p50_range"] = [round(min(versus), 3), round(max(versus), 3)]
        out["front_door_faster_rounds"] = sum(v < 1 for v in versus)
    return out


def concurrent(host: str, port: int, clients: int, seconds: float, path: str = "/hello") -> dict[str, float]:
    latencies: list[list[float]] = [[] for _ in range(clients)]
    errors = [0] * clients
    stop_at = [0.0]
    ready = threading.Barrier(clients + 1)

    def caller(index: int) -> None:
        client = RawClient(host, port)
        request = client.request_bytes("GET", path)
        samples = latencies[index]
        clock = time.perf_counter_ns
        try:
            ready.wait()
            while time.perf_counter() < stop_at[0]:
                t0 = clock()
                try:
                    status, _ = client.send(request)
                except (OSError, HttpError):
                    errors[index] += 1
                    client.close()
                    client = RawClient(host, port)
                    continue
                samples.append((clock() - t0) / 1e6)
                if status != 200:
                    errors[index] += 1
        finally:
            client.close()

    threads = [threading.Thread(target=caller, args=(i,), daemon=True) for i in range(clients)]
    for thread in threads:
        thread.start()
    stop_at[0] = time.perf_counter() + seconds
    ready.wait()
    began = time.perf_counter()
    for thread in threads:
        thread.join()
    wall = time.perf_counter() - began
    values = sorted(v for per in latencies for v in per)
    return {
        "clients": clients,
        "seconds": round(wall, 1),
        "requests": len(values),
        "errors": sum(errors),
        "per_s": len(values) / wall,
        "p50_ms": percentile(values, 50),
        "p99_ms": percentile(values, 99),
    }


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def find_sls(given: str | None) -> str | None:
    """The ``serverless`` v3 command: ``--sls PATH``, else ``serverless`` or ``sls`` on PATH."""
    if given:
        return given
    return shutil.which("serverless") or shutil.which("sls")


@contextlib.contextmanager
def serverless_offline(sls: str | None) -> Iterator[int | None]:
    """serverless-offline serving the same handler as an HTTP API route; yields its HTTP port (None when not
    installed). It keeps the handler's process running between requests: nothing freezes there."""
    if sls is None:
        yield None
        return
    # serverless-offline prints port 0 as it was given rather than the port it got: two free ports chosen here
    http_port, lambda_port = _free_port(), _free_port()
    with tempfile.TemporaryDirectory() as tmp:
        shutil.copy(FUNCTIONS / "trivial/app.py", tmp)
        Path(tmp, "serverless.yml").write_text(
            "service: front-door-bench\nframeworkVersion: '3'\nprovider: {name: aws, runtime: python3.11}\n"
            "plugins: [serverless-offline]\n"
            f"custom: {{serverless-offline: {{httpPort: {http_port}, lambdaPort: {lambda_port}}}}}\n"
            "functions:\n  web:\n    handler: app.handler\n    events: [{httpApi: {path: /hello, method: get}}]\n"
        )
        # its own process group, so that the node process and the Python one it spawns end together
        proc = subprocess.Popen(
            [sls, "offline", "start"], cwd=tmp, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, start_new_session=True
        )
        try:
            assert proc.stdout is not None
            output: list[bytes] = []
            port = None
            for raw in proc.stdout:
                output.append(raw)
                found = re.search(rb"http://localhost:(\d+)", raw)
                if found and b"/hello" in raw:
                    port = int(found.group(1))
                    break
            if port is None:
                raise RuntimeError(f"serverless-offline did not print its route: {b''.join(output)[-2000:]!r}")
            for raw in proc.stdout:  # the route table is printed before it listens
                if b"Server ready" in raw:
                    break
            # it logs every request: its output is drained, or the pipe fills and it blocks
            stdout = proc.stdout
            threading.Thread(target=lambda: [None for _ in stdout], daemon=True).start()
            yield port
        finally:
            os.killpg(proc.pid, signal.SIGTERM)
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--freezer", default="auto")
    parser.add_argument("--requests", type=int, help="sequential requests per target (2000; --quick 300)")
    parser.add_argument("--rounds", type=int, help="rounds they are split into (20; --quick 5)")
    parser.add_argument("--clients", type=int)
    parser.add_argument("--seconds", type=float)
    parser.add_argument(
        "--gap-ms", type=float, default=0.0, help="pause after each sequential request (default 0: back to back)"
    )
    parser.add_argument("--sls", help="the serverless v3 command (default: serverless or sls on PATH)")
    parser.add_argument("--no-offline", action="store_true", help="do not measure serverless-offline")
    parser.add_argument(
        "--src", type=Path, help="run the emulator from this source tree (python -m emulator.cli), to compare versions"
    )
    args = parser.parse_args()
    n = args.requests or (300 if args.quick else 2000)
    rounds = args.rounds or (5 if args.quick else 20)
    clients = args.clients or (16 if args.quick else 64)
    seconds = args.seconds or (5.0 if args.quick else 20.0)
    sls = None if args.no_offline else find_sls(args.sls)
    load_before = os.getloadavg()
    with tempfile.TemporaryDirectory() as tmp:
        server, api_port = start(Path(tmp), clients, args.freezer, args.src)
        try:
            with serverless_offline(sls) as offline_port:
                front = RawClient(server.host, api_port)
                invoke = RawClient(server.host, server.port)
                offline = None if offline_port is None else RawClient("127.0.0.1", offline_port)
                targets = {"front_door": front, "invoke_api": invoke, "serverless_offline": offline}
                invoke_path = f"/2015-03-31/functions/{FUNCTION}/invocations"
                requests = {
                    "front_door": front.request_bytes("GET", "/hello"),
                    "invoke_api": invoke.request_bytes("POST", invoke_path, event_for(api_port)),
                }
                if offline is not None:
                    requests["serverless_offline"] = offline.request_bytes("GET", "/hello")
                try:
                    seq = sequential(
                        targets,
                        requests,
                        n,
                        rounds,
                        {"front_door": server.pid, "invoke_api": server.pid},
                        gap_s=args.gap_ms / 1000,
                    )
                finally:
                    for client in targets.values():
                        if client is not None:
                            client.close()
            load = concurrent(server.host, api_port, clients, seconds)
        finally:
            server.stop()
    offline_measured = "serverless_offline_p50_ms" in seq
    report = {
        "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "load_average_before": load_before,
        "load_average_after": os.getloadavg(),
        "freezer": server.freezer,
        "sequential": seq,
        "concurrent": load,
        "targets": {
            "ratio_p50": seq["ratio_p50"] <= TARGET_RATIO,
            "errors": load["errors"] == 0 and not any(seq["errors"].values()),
            "lower_than_offline": seq["vs_offline_p50"] < 1 if offline_measured else None,
        },
    }
    if args.json:
        print(json.dumps(report, indent=2))
        return 0
    after = ", ".join(f"{v:.2f}" for v in report["load_average_after"])
    before = ", ".join(f"{v:.2f}" for v in load_before)
    print(f"{report['date']}; load average {before} (before), {after} (after); freezer {server.freezer}")
    print(
        f"warm p50 (median of {rounds} rounds of {seq['requests_per_round']} requests each way): "
        f"front door {seq['front_door_p50_ms']:.3f} ms, Invoke API {seq['invoke_api_p50_ms']:.3f} ms "
        f"-> {seq['ratio_p50']:.2f}x (rounds {seq['ratio_p50_range'][0]:.2f}-{seq['ratio_p50_range'][1]:.2f}; "
        f"target <= {TARGET_RATIO}x); p99 {seq['front_door_p99_ms']:.3f} / {seq['invoke_api_p99_ms']:.3f} ms"
    )
    print(
        f"emulator CPU per request: front door {seq['front_door_server_cpu_us']:.0f} us, "
        f"Invoke API {seq['invoke_api_server_cpu_us']:.0f} us"
    )
    if offline_measured:
        print(
            "serverless-offline (same handler, no freezing), same rounds: "
            f"p50 {seq['serverless_offline_p50_ms']:.3f} ms, p99 {seq['serverless_offline_p99_ms']:.3f} ms; "
            f"front door / offline {seq['vs_offline_p50']:.2f}x "
            f"(rounds {seq['vs_offline_p50_range'][0]:.2f}-{seq['vs_offline_p50_range'][1]:.2f}; front door faster in "
            f"{seq['front_door_faster_rounds']}/{rounds} rounds; target < 1)"
        )
    else:
        print("serverless-offline: not installed (see --sls), not measured")
    print(f"sequential errors: {seq['errors']}")
    print(
        f"{load['clients']} keep-alive clients for {load['seconds']} s: {load['requests']} requests, "
        f"{load['errors']} errors, {load['per_s']:.0f}/s, p50 {load['p50_ms']:.2f} ms, p99 {load['p99_ms']:.2f} ms"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())

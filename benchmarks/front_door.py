"""The HTTP front door against a direct Invoke API call of the same function, in the same run.

    python benchmarks/front_door.py            # 2,000 sequential requests each way, then 64 clients for 20 s
    python benchmarks/front_door.py --quick    # 300 requests each way, 16 clients for 5 s
    python benchmarks/front_door.py --json

1. Warm p50 over one keep-alive connection, one request at a time: ``GET /hello`` through an HTTP API route
   (payload 2.0; the trivial handler's ``{"ok": true}`` is answered as 2.0's inferred 200 response) against
   ``POST`` of the same 2.0 event to the Invoke API; alternating blocks, so load on the shared machine falls on
   both alike. Target: front door p50 <= 1.3x Invoke API p50.
2. ``--clients`` keep-alive clients (threads) for ``--seconds`` against the front door, reserved concurrency equal
   to the clients (every environment initialised first): errors (anything but 200), requests/s, p50/p99.
   Target: 0 errors.
3. serverless-offline on the same handler, when ``serverless`` and ``serverless-offline`` are installed (npm;
   not in CI): its warm p50 through the same client. It keeps the process running between requests: nothing
   freezes there.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import socket
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _harness import FUNCTIONS, HttpError, RawClient, Server, percentile

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


def start(config_dir: Path, clients: int, freezer: str) -> tuple[Server, int]:
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
    from _harness import lambda_freeze_command

    command, env = lambda_freeze_command()
    server = Server([*command, "serve", "--config", str(config)], env=env).start()
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:  # the front door line follows the serving line
        for line in server.stderr_lines:
            if "HTTP front door on " in line:
                return server, int(line.rsplit(":", 1)[1])
        time.sleep(0.01)  # a benchmark waiting on a child's output
    server.stop()
    raise RuntimeError(f"no front door line: {''.join(server.stderr_lines)}")


def sequential(server: Server, api_port: int, n: int, blocks: int = 10) -> dict[str, float]:
    front = RawClient(server.host, api_port)
    invoke = RawClient(server.host, server.port)
    event = event_for(api_port)
    get_hello = front.request_bytes("GET", "/hello")
    post_event = invoke.request_bytes("POST", f"/2015-03-31/functions/{FUNCTION}/invocations", event)
    samples: dict[str, list[float]] = {"front_door": [], "invoke_api": []}
    clock = time.perf_counter_ns
    try:
        for _ in range(20):  # warm both paths
            front.send(get_hello)
            invoke.send(post_event)
        for _ in range(blocks):
            for name, client, request in (("front_door", front, get_hello), ("invoke_api", invoke, post_event)):
                for _ in range(n // blocks):
                    t0 = clock()
                    status, body = client.send(request)
                    samples[name].append((clock() - t0) / 1e6)
                    if status != 200:
                        raise HttpError(f"{name}: {status} {body[:200]!r}")
    finally:
        front.close()
        invoke.close()
    out: dict[str, float] = {}
    for name, values in samples.items():
        values.sort()
        out[f"{name}_p50_ms"] = percentile(values, 50)
        out[f"{name}_p99_ms"] = percentile(values, 99)
    out["ratio_p50"] = out["front_door_p50_ms"] / out["invoke_api_p50_ms"]
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


def serverless_offline(n: int) -> dict[str, object] | None:
    """serverless-offline on the same handler, when installed (``npm i -g serverless serverless-offline``)."""
    sls = shutil.which("serverless") or shutil.which("sls")
    if sls is None:
        return None
    import re
    import subprocess

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
        proc = subprocess.Popen([sls, "offline", "start"], cwd=tmp, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        try:
            assert proc.stdout is not None
            port = None
            for raw in proc.stdout:
                found = re.search(rb"http://localhost:(\d+)", raw)
                if found and b"/hello" in raw:
                    port = int(found.group(1))
                    break
            if port is None:
                return {"error": "serverless-offline did not print its route"}
            for raw in proc.stdout:  # the route table is printed before it listens
                if b"Server ready" in raw:
                    break
            # it logs every request: its output is drained, or the pipe fills and it blocks
            threading.Thread(target=lambda: [None for _ in proc.stdout], daemon=True).start()
            client = RawClient("127.0.0.1", port)
            request = client.request_bytes("GET", "/hello")
            for _ in range(20):
                client.send(request)
            values = []
            errors = 0
            for _ in range(n):
                t0 = time.perf_counter_ns()
                status, _ = client.send(request)
                values.append((time.perf_counter_ns() - t0) / 1e6)
                errors += status != 200
            client.close()
            values.sort()
            return {"p50_ms": percentile(values, 50), "p99_ms": percentile(values, 99), "errors": errors}
        finally:
            proc.terminate()
            proc.wait(timeout=15)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--freezer", default="auto")
    parser.add_argument("--clients", type=int)
    parser.add_argument("--seconds", type=float)
    args = parser.parse_args()
    n = 300 if args.quick else 2000
    clients = args.clients or (16 if args.quick else 64)
    seconds = args.seconds or (5.0 if args.quick else 20.0)
    with tempfile.TemporaryDirectory() as tmp:
        server, api_port = start(Path(tmp), clients, args.freezer)
        try:
            seq = sequential(server, api_port, n)
            load = concurrent(server.host, api_port, clients, seconds)
        finally:
            server.stop()
    offline = serverless_offline(n)
    report = {
        "load_average": os.getloadavg(),
        "freezer": server.freezer,
        "sequential": seq,
        "concurrent": load,
        "serverless_offline": offline,
        "targets_met": seq["ratio_p50"] <= TARGET_RATIO and load["errors"] == 0,
    }
    if args.json:
        print(json.dumps(report, indent=2))
        return 0
    print(f"load average {report['load_average']}, freezer {server.freezer}")
    print(
        f"warm p50: front door {seq['front_door_p50_ms']:.3f} ms, Invoke API {seq['invoke_api_p50_ms']:.3f} ms "
        f"-> {seq['ratio_p50']:.2f}x (target <= {TARGET_RATIO}x); p99 {seq['front_door_p99_ms']:.3f} / "
        f"{seq['invoke_api_p99_ms']:.3f} ms"
    )
    print(
        f"{load['clients']} keep-alive clients for {load['seconds']} s: {load['requests']} requests, "
        f"{load['errors']} errors, {load['per_s']:.0f}/s, p50 {load['p50_ms']:.2f} ms, p99 {load['p99_ms']:.2f} ms"
    )
    if offline is None:
        print("serverless-offline: not installed (npm i -g serverless serverless-offline), not measured")
    else:
        print(f"serverless-offline (no freezing): {offline}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Pass-through overhead of the fault proxy: asyncpg transactions per second directly vs through the proxy.

    .venv/bin/python benchmarks/proxy_overhead.py                  # 8 connections, ~10 s per path
    .venv/bin/python benchmarks/proxy_overhead.py --bare           # also through a bare asyncio forwarder
    .venv/bin/python benchmarks/proxy_overhead.py --mode tx --duration-s 20

The proxy runs in its own process on uvloop, as in the emulator (apart from the function's runtime), with no
toxic: the direct path every connection takes until a fault is added. Paths alternate round by round so that drift
in the machine's load hits them alike. ``--bare`` adds a forwarder with no logic at all (one ``transport.write``
per chunk), the floor for any single-process asyncio proxy on this machine. CPU per transaction is measured for
the load process, the PostgreSQL backends (when on this host) and each forwarder process: it is less sensitive to
other load on the machine than TPS is. Target: ≥ 0.9 × direct.
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing
import os
import statistics
import sys
import time
from dataclasses import dataclass, field
from multiprocessing.connection import Connection as Pipe
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import asyncpg

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

DEFAULT_DSN = "postgresql://postgres@127.0.0.1:5432/test"
STATEMENTS = {
    "select": ("SELECT $1::int",),  # pgbench -S: one statement per transaction (autocommit)
    "tx": ("BEGIN", "SELECT $1::int", "COMMIT"),  # an explicit transaction around it: three round trips
}


def _use_uvloop() -> None:
    try:
        import uvloop
    except ImportError:
        return
    asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())


class _AlwaysThawed:
    """The benchmark's environment: never frozen (freeze tracking is not on the pass-through path)."""

    id = "bench"
    frozen = False

    def add_freeze_listener(self, listener: object) -> None:
        pass

    def remove_freeze_listener(self, listener: object) -> None:
        pass


class _Bare(asyncio.Protocol):
    """A forwarder with no logic: each chunk is written to the other socket, nothing else."""

    def __init__(self, peer: _Bare | None = None):
        self.peer = peer
        self.transport: Any = None
        self.early: list[bytes] = []

    def connection_made(self, transport: Any) -> None:
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        if self.peer is not None and self.peer.transport is not None:
            self.peer.transport.write(data)
        else:
            self.early.append(data)

    def connection_lost(self, exc: Exception | None) -> None:
        if self.peer is not None and self.peer.transport is not None:
            self.peer.transport.close()


async def _bare_listen(host: str, port: int) -> int:
    loop = asyncio.get_running_loop()

    def accept() -> _Bare:
        client = _Bare()

        async def connect() -> None:
            upstream = _Bare(client)
            await loop.create_connection(lambda: upstream, host, port)
            client.peer = upstream
            for data in client.early:
                upstream.transport.write(data)

        tasks.add(task := loop.create_task(connect()))
        task.add_done_callback(tasks.discard)
        return client

    tasks: set[asyncio.Task[None]] = set()
    server = await loop.create_server(accept, "127.0.0.1", 0)
    return int(server.sockets[0].getsockname()[1])


def _serve(kind: str, host: str, port: int, pipe: Pipe) -> None:
    """A forwarder process: report the port, answer "cpu" with its CPU seconds so far, stop on anything else."""
    from emulator.proxy import Proxy

    _use_uvloop()

    async def main() -> None:
        stop = asyncio.Event()

        def on_request() -> None:
            if pipe.recv() == "cpu":
                pipe.send(time.process_time())
            else:
                stop.set()

        asyncio.get_running_loop().add_reader(pipe.fileno(), on_request)
        if kind == "proxy":
            async with Proxy(host, port, name="bench") as proxy:
                pipe.send(await proxy.listen(_AlwaysThawed()))
                await stop.wait()
        else:
            pipe.send(await _bare_listen(host, port))
            await stop.wait()

    asyncio.run(main())


@dataclass
class _Path:
    name: str
    dsn: str
    pipe: Pipe | None = None  # None: direct, no forwarder process
    tps: list[float] = field(default_factory=list)
    transactions: int = 0
    load_cpu_s: float = 0.0
    server_cpu_s: float | None = 0.0
    forwarder_cpu_s: float = 0.0

    def forwarder_cpu(self) -> float:
        if self.pipe is None:
            return 0.0
        self.pipe.send("cpu")
        return float(self.pipe.recv())


def _process_cpu_s(pid: int) -> float | None:
    """utime + stime of a process on this host (a PostgreSQL backend), None if it cannot be read."""
    try:
        with open(f"/proc/{pid}/stat") as stat:
            fields = stat.read().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def _worker(
    dsn: str, statements: tuple[str, ...], until_s: float, counts: list[int], backend_cpu: list[float | None], i: int
) -> None:
    conn = await asyncpg.connect(dsn)
    try:
        backend = await conn.fetchval("SELECT pg_backend_pid()")
        cpu_before_s = _process_cpu_s(backend)
        prepared = [await conn.prepare(sql) for sql in statements]
        takes_arg = ["$1" in sql for sql in statements]
        n = 0
        while time.monotonic() < until_s:
            for stmt, arg in zip(prepared, takes_arg, strict=True):
                await (stmt.fetchval(n & 0xFFFF) if arg else stmt.fetchval())
            n += 1
        counts[i] = n
        cpu_after_s = _process_cpu_s(backend)
        if cpu_before_s is not None and cpu_after_s is not None:
            backend_cpu[i] = cpu_after_s - cpu_before_s
    finally:
        await conn.close()


async def _load(
    dsn: str, connections: int, statements: tuple[str, ...], duration_s: float
) -> tuple[int, float, float | None]:
    """Transactions, seconds, and the PostgreSQL backends' CPU seconds (None when not on this host)."""
    counts = [0] * connections
    backend_cpu: list[float | None] = [None] * connections
    started_s = time.monotonic()
    until_s = started_s + duration_s
    await asyncio.gather(*(_worker(dsn, statements, until_s, counts, backend_cpu, i) for i in range(connections)))
    server_cpu_s = None if None in backend_cpu else sum(x for x in backend_cpu if x is not None)
    return sum(counts), time.monotonic() - started_s, server_cpu_s


def _measure(path: _Path, args: argparse.Namespace) -> None:
    statements = STATEMENTS[args.mode]
    asyncio.run(_load(path.dsn, args.connections, statements, args.warmup_s))
    load_before_s, forwarder_before_s = time.process_time(), path.forwarder_cpu()
    transactions, elapsed_s, server_cpu_s = asyncio.run(
        _load(path.dsn, args.connections, statements, args.duration_s / args.rounds)
    )
    path.load_cpu_s += time.process_time() - load_before_s
    path.server_cpu_s = None if server_cpu_s is None or path.server_cpu_s is None else path.server_cpu_s + server_cpu_s
    path.forwarder_cpu_s += path.forwarder_cpu() - forwarder_before_s
    path.transactions += transactions
    path.tps.append(transactions / elapsed_s)


def _with_port(dsn: str, port: int) -> str:
    parts = urlsplit(dsn)
    user = f"{parts.username}@" if parts.username else ""
    return parts._replace(netloc=f"{user}127.0.0.1:{port}").geturl()


def main() -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--dsn", default=os.environ.get("LAMBDA_FREEZE_PG_DSN", DEFAULT_DSN))
    parser.add_argument("--connections", type=int, default=8)
    parser.add_argument("--duration-s", type=float, default=10.0, help="measured time per path, over all rounds")
    parser.add_argument("--rounds", type=int, default=2, help="rounds per path, alternating between paths")
    parser.add_argument("--warmup-s", type=float, default=1.0, help="unmeasured load before each round")
    parser.add_argument("--mode", choices=sorted(STATEMENTS), default="select")
    parser.add_argument("--bare", action="store_true", help="also measure a bare asyncio forwarder")
    args = parser.parse_args()

    parts = urlsplit(args.dsn)
    host, port = parts.hostname or "127.0.0.1", parts.port or 5432
    ctx = multiprocessing.get_context("spawn")
    paths = [_Path("direct", args.dsn)]
    processes = []
    for kind in ("proxy", "bare") if args.bare else ("proxy",):
        parent, child = ctx.Pipe()
        process = ctx.Process(target=_serve, args=(kind, host, port, child), daemon=True)
        process.start()
        processes.append(process)
        paths.append(_Path(kind, _with_port(args.dsn, parent.recv()), parent))
    try:
        _use_uvloop()
        for _ in range(args.rounds):
            for path in paths:
                _measure(path, args)
    finally:
        for path in paths:
            if path.pipe is not None:
                path.pipe.send("stop")
        for process in processes:
            process.join(timeout=10)

    direct = statistics.fmean(paths[0].tps)
    print(
        f"mode={args.mode} connections={args.connections} rounds={args.rounds}×{args.duration_s / args.rounds:g} s "
        f"cpus={os.cpu_count()} load average={os.getloadavg()[0]:.2f}"
    )
    for path in paths:
        tps = statistics.fmean(path.tps)
        rounds = ", ".join(f"{x:.0f}" for x in path.tps)
        per_tx_us = 1e6 / max(path.transactions, 1)
        cpu = f"load {path.load_cpu_s * per_tx_us:5.1f} µs/tx"
        if path.server_cpu_s is not None:
            cpu += f", postgres {path.server_cpu_s * per_tx_us:5.1f} µs/tx"
        if path.pipe is not None:
            cpu += f", forwarder {path.forwarder_cpu_s * per_tx_us:5.1f} µs/tx"
        print(f"{path.name:7}: {tps:8.0f} TPS  {tps / direct:6.3f} × direct  [{rounds}]  CPU: {cpu}")
    print(f"proxy / direct = {statistics.fmean(paths[1].tps) / direct:.3f} (target ≥ 0.9)")
    base, proxied = paths[0], paths[1]
    if base.server_cpu_s is not None and proxied.server_cpu_s is not None:
        # When the load and the server already keep every CPU busy, TPS scales with 1 / (CPU per transaction):
        # this is the best ratio any forwarder with this CPU cost can reach on this machine.
        per_tx = [
            (path.load_cpu_s + (path.server_cpu_s or 0.0) + path.forwarder_cpu_s) / max(path.transactions, 1)
            for path in (base, proxied)
        ]
        print(f"CPU-bound ceiling = {per_tx[0] / per_tx[1]:.3f} (CPU per transaction, direct / proxied)")
    return 0


if __name__ == "__main__":
    sys.exit(main())

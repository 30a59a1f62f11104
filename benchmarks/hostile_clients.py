"""Hostile and broken clients against `lambda-freeze serve`, at full size: the server's RSS growth, and the worst
invoke latency a well-behaved caller sees meanwhile.

Each attack gets a fresh server (``--src`` runs another source tree, to compare versions); a caller invokes the
trivial function on its own kept-alive connection every 10 ms throughout. Targets (issue 12): RSS growth at most
20 MB for a head bomb and 50 MB for never-read pipelining; the caller's worst invoke at most 250 ms during either.

  head-value     a 64 MiB then a 128 MiB ``X-Big:`` value that never ends (bytes sent until the server answers)
  head-name      a 64 MiB header name
  pipeline       100,000 pipelined GETs of /_lambda-freeze/openapi.json whose answers are never read
  idle           2,000 idle connections and 2,000 partial heads (with 2 s header and idle timeouts)
  slowloris      200 connections sending a byte a second (with a 2 s header timeout)
"""

from __future__ import annotations

import argparse
import json
import os
import select
import socket
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

from _harness import INVOKE_PATH, RawClient, Server

ATTACKS = ("head-value", "head-name", "pipeline", "idle", "slowloris")
MIB = 1024 * 1024
OPENAPI = "/_lambda-freeze/openapi.json"


def rss_kb(pid: int) -> int:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


class Watch:
    """While the attack runs: the server's RSS sampled every 5 ms, and a caller's invoke every 10 ms."""

    def __init__(self, server: Server):
        assert server.proc is not None
        self._pid = server.proc.pid
        self._client = RawClient(server.host, server.port)
        for _ in range(50):  # warm: the environment exists and is frozen between invokes
            self._client.post(INVOKE_PATH, b"{}")
        self.rss_before_kb = rss_kb(self._pid)
        self.rss_peak_kb = self.rss_before_kb
        self.latencies_ms: list[float] = []
        self.failures: list[str] = []
        self._stop = threading.Event()
        self._threads = [
            threading.Thread(target=self._sample, daemon=True),
            threading.Thread(target=self._call, daemon=True),
        ]

    def __enter__(self) -> Watch:
        for thread in self._threads:
            thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(10)
        self.rss_after_kb = rss_kb(self._pid)

    def _sample(self) -> None:
        while not self._stop.is_set():
            self.rss_peak_kb = max(self.rss_peak_kb, rss_kb(self._pid))
            self._stop.wait(0.005)  # wait-ok: the sampling period

    def _call(self) -> None:
        while not self._stop.is_set():
            started = time.perf_counter()
            try:
                status, body = self._client.post(INVOKE_PATH, b"{}")
                if status != 200:
                    self.failures.append(f"{status}: {body[:100]!r}")
            except OSError as exc:
                self.failures.append(repr(exc))
                return
            self.latencies_ms.append((time.perf_counter() - started) * 1000)
            self._stop.wait(0.01)  # wait-ok: the caller's pace

    def figures(self) -> dict[str, object]:
        ordered = sorted(self.latencies_ms)
        return {
            "rss_before_mb": round(self.rss_before_kb / 1024, 1),
            "rss_growth_mb": round((self.rss_peak_kb - self.rss_before_kb) / 1024, 1),
            "rss_after_mb": round(self.rss_after_kb / 1024, 1),
            "caller_invokes": len(ordered),
            "caller_p50_ms": round(ordered[len(ordered) // 2], 2) if ordered else None,
            "caller_worst_ms": round(ordered[-1], 1) if ordered else None,
            "caller_failures": self.failures[:3],
        }


def _readable(sock: socket.socket, timeout_s: float) -> bool:
    poller = select.poll()  # not select(): thousands of sockets are open, past FD_SETSIZE
    poller.register(sock, select.POLLIN)
    return bool(poller.poll(timeout_s * 1000))


def _answered(sock: socket.socket) -> bytes | None:
    """The start of the server's answer, if it has sent one (or closed)."""
    return _wait_answer(sock, 0.0)


def head_bomb(server: Server, start: bytes, size: int) -> dict[str, object]:
    """``start``, then ``size`` bytes that never end the line, 1 MiB at a time, until the server answers."""
    sock = socket.create_connection((server.host, server.port))
    sock.settimeout(30)
    piece = b"a" * MIB
    sent = 0
    answer = None
    started = time.perf_counter()
    try:
        sock.sendall(start)
        while sent < size:
            answer = _answered(sock)
            if answer is not None:
                break
            sock.sendall(piece)
            sent += len(piece)
        if answer is None:
            sock.sendall(b"\r\n\r\n")
            answer = sock.recv(200) or b"(closed)"
    except OSError as exc:
        answer = answer or repr(exc).encode()
    finally:
        sock.close()
    return {
        "sent_mb": round(sent / MIB, 1),
        "seconds": round(time.perf_counter() - started, 2),
        "answer": answer.split(b"\r\n", 1)[0].decode("latin-1"),
    }


def pipeline(server: Server, count: int) -> dict[str, object]:
    """``count`` pipelined GETs whose answers are never read; sent until the server stops reading (5 s)."""
    sock = socket.create_connection((server.host, server.port))
    request = f"GET {OPENAPI} HTTP/1.1\r\nHost: x\r\n\r\n".encode()
    batch = request * 1000
    sock.settimeout(5)
    sent = 0
    started = time.perf_counter()
    try:
        while sent < count:
            sock.sendall(batch)
            sent += 1000
    except TimeoutError:
        pass  # the server stopped reading: its answers are not being read
    held = time.perf_counter()
    time.sleep(2)  # wait-ok: the server holds what it has; an unbounded one would keep answering into memory
    sock.close()
    return {"requests_sent": sent, "send_seconds": round(held - started, 2)}


def many_connections(server: Server, idle: int, partial: int, timeout_s: float) -> dict[str, object]:
    """``idle`` connections that send nothing and ``partial`` ones that send half a head; then, after the
    timeouts, how many the server still holds open, and whether new connections are served."""
    socks = []
    refused = 0
    for i in range(idle + partial):
        try:
            sock = socket.create_connection((server.host, server.port), timeout=5)
        except OSError:
            refused += 1
            continue
        if i >= idle:
            sock.sendall(b"GET / HTTP/1.1\r\nHost: x\r\nX-Partial: ")
        socks.append(sock)
    time.sleep(timeout_s + 2.5)  # wait-ok: past the timeouts, and the sweep after them
    outcomes: dict[str, int] = {}
    for sock in socks:
        answer = _wait_answer(sock, 0.0)
        if answer is None:
            outcome = "still open"
        elif answer.startswith(b"HTTP/1.1 "):
            outcome = answer[9:12].decode()
        else:
            outcome = "closed"
        outcomes[outcome] = outcomes.get(outcome, 0) + 1
        sock.close()
    fresh = RawClient(server.host, server.port)
    status, _ = fresh.get(OPENAPI)
    return {
        "connections_made": len(socks),
        "refused_at_connect": refused,
        "after_the_timeouts": outcomes,
        "new_connection_after": status,
    }


def _wait_answer(sock: socket.socket, timeout_s: float) -> bytes | None:
    if not _readable(sock, timeout_s):
        return None
    try:
        return sock.recv(4096) or b"(closed)"
    except OSError as exc:
        return repr(exc).encode()


def slowloris(server: Server, count: int, timeout_s: float) -> dict[str, object]:
    socks = [socket.create_connection((server.host, server.port)) for _ in range(count)]
    head = b"GET / HTTP/1.1\r\nHost: x\r\nX-Slow: " + b"s" * 1000
    answered: dict[int, bytes] = {}
    started = time.perf_counter()
    for byte in head:
        if time.perf_counter() - started > timeout_s + 10:
            break
        for i, sock in enumerate(socks):
            if i in answered:
                continue
            answer = _wait_answer(sock, 0.0)
            if answer is not None:
                answered[i] = answer
                continue
            try:
                sock.send(bytes([byte]))
            except OSError as exc:
                answered[i] = repr(exc).encode()
        if len(answered) == count:
            break
        time.sleep(1)  # wait-ok: a byte a second is the attack
    for sock in socks:
        sock.close()
    statuses = sorted({a.split(b"\r\n", 1)[0].decode("latin-1") for a in answered.values()})
    return {
        "connections": count,
        "cut_off": len(answered),
        "seconds": round(time.perf_counter() - started, 1),
        "answers": statuses,
    }


def run(attack: str, args: argparse.Namespace) -> dict[str, object]:
    extra: tuple[str, ...] = ()
    if attack in ("idle", "slowloris"):
        extra = ("--http-header-timeout", "2", "--http-idle-timeout", "2")
    server = Server.lambda_freeze("app.handler", freezer=args.freezer, src=args.src, extra_args=extra).start()
    try:
        watch = Watch(server)
        steps: list[tuple[str, Callable[[], dict[str, object]]]]
        get = f"GET {OPENAPI} HTTP/1.1\r\nHost: x\r\n".encode()
        if attack == "head-value":
            steps = [
                ("64 MiB value", lambda: head_bomb(server, get + b"X-Big: ", 64 * MIB)),
                ("128 MiB value", lambda: head_bomb(server, get + b"X-Big: ", 128 * MIB)),
            ]
        elif attack == "head-name":
            steps = [("64 MiB name", lambda: head_bomb(server, get + b"X-", 64 * MIB))]
        elif attack == "pipeline":
            steps = [("100,000 unread", lambda: pipeline(server, 100_000))]
        elif attack == "idle":
            steps = [("2,000 idle + 2,000 partial", lambda: many_connections(server, 2000, 2000, 2.0))]
        else:
            steps = [("200 at a byte a second", lambda: slowloris(server, 200, 2.0))]
        with watch:
            results = {name: step() for name, step in steps}
            time.sleep(1)  # wait-ok: the caller's view of the server right after the attack, too
        return {"attack": attack, "steps": results, **watch.figures()}
    finally:
        server.stop()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--attack", action="append", choices=ATTACKS, help="only these (repeatable; default all)")
    parser.add_argument("--src", type=Path, help="run the emulator from this source tree, to compare versions")
    parser.add_argument("--freezer", default="auto", help="the freezer backend (default auto)")
    parser.add_argument("--json", action="store_true", help="print one JSON document")
    args = parser.parse_args(argv)
    reports = []
    for attack in args.attack or ATTACKS:
        if not args.json:
            print(f"{attack} ...", file=sys.stderr, flush=True)
        reports.append(run(attack, args))
    if args.json:
        print(json.dumps({"src": str(args.src or "."), "loadavg": os.getloadavg(), "attacks": reports}, indent=2))
        return 0
    print(f"hostile clients against {args.src or 'this tree'} (load average {os.getloadavg()[0]:.2f})")
    columns = f"{'RSS before':>10} {'growth':>8} {'after':>8} {'caller p50':>10} {'worst':>8}"
    print(f"  {'attack':<11} {columns}  what happened")
    for report in reports:
        print(
            f"  {report['attack']:<11} {report['rss_before_mb']:>8} MB {report['rss_growth_mb']:>5} MB "
            f"{report['rss_after_mb']:>5} MB {report['caller_p50_ms']!s:>7} ms {report['caller_worst_ms']!s:>5} ms"
            f"  {json.dumps(report['steps'])}"
        )
        if report["caller_failures"]:
            print(f"  {'':<11} caller failures: {report['caller_failures']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

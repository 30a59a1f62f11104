"""Where the emulator's time goes on a warm invoke: a sampled profile under load, and the engine's pieces timed alone.

    .venv/bin/pip install py-spy                       # once; the profile needs it (the micro-benchmarks do not)
    .venv/bin/python benchmarks/profile_warm.py                     # cgroup2 (auto), trivial handler
    .venv/bin/python benchmarks/profile_warm.py --event-bytes 1000000 --freezer sigstop
    .venv/bin/python benchmarks/profile_warm.py --raw-out /tmp/warm.folded   # keep the stacks (speedscope opens them)

1. CPU per invoke of each process (emulator, runtime, client), from ``/proc/<pid>/task/*/schedstat``, without a
   profiler attached.
2. ``py-spy record --nonblocking`` on the emulator during a second run; every sample is put in one category (the
   first rule in ``CATEGORIES`` that any frame of its stack matches) and the shares are turned into µs per invoke
   with the CPU figure of step 1.
3. Micro-benchmarks, in this process, of what the engine does per invoke besides HTTP: freeze + thaw for each
   freezer (against a real child process in the group), listing the group's members and reading their peak RSS
   (Max Memory Used), writing a log line, validating a payload, making request and trace ids; and the HTTP floor:
   one round trip to an aiohttp server that answers at once, and to a bare uvloop protocol that does the same.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable
from pathlib import Path

from _harness import CLIENTS, INVOKE_PATH, Server, cpu_ns, emit, timed_posts

# (category, regex over one frame "function (path:line)"); a sample goes to the first category any frame of its stack
# matches, frames below the event loop's ``run`` only (everything above it is the same for every sample).
CATEGORIES: list[tuple[str, re.Pattern[str]]] = [
    (name, re.compile(pattern))
    for name, pattern in [
        ("freezer: freeze/thaw writes", r"^(Environment\._freeze|Environment\._thaw|\w+Group\.(freeze|thaw)) "),
        (
            "Max Memory Used (group members + /proc status)",
            r"^(Reports\._measure_memory|peak_rss_kb|process_tree) ",
        ),
        (
            "log lines (format, sink write, runtime output)",
            r"/emulator/(logs|process)\.py|^Reports\.(_emit|_drain) ",
        ),
        ("payload JSON validation (invoke.py)", r"^_validate_payload "),
        ("request/trace ids (uuid4, secrets)", r"^(new_trace_id|uuid4) |^Invocation\.__init__ "),
        (
            "engine: environment, lifecycle, pool, invocation",
            r"/emulator/(environment|answers|extension_side|failures|shutdown|reports"
            r"|lifecycle|function|server|invocation)\.py",
        ),
        ("aiohttp: socket writes (send syscalls)", r"^StreamWriter\._writelines "),
        ("aiohttp: response objects + headers", r"/aiohttp/(web_response|http_writer)\.py"),
        ("aiohttp: request parse, routing, Request objects", r"/(aiohttp|yarl|multidict)/"),
        ("Runtime/Invoke API handlers (runtime_api/)", r"/runtime_api/"),
        ("asyncio: tasks, futures, timers (Python part)", r"/asyncio/"),
    ]
]
LOOP_RUN = re.compile(r"^Runner\.run |^BaseEventLoop\.run_(forever|until_complete) ")
LOOP_NATIVE = "uvloop native: epoll, recv, callbacks (no Python frame)"
OTHER = "other"


# ------------------------------------------------------------------------------------------------ profile
def _find_py_spy() -> str | None:
    beside = Path(sys.executable).parent / "py-spy"
    return str(beside) if beside.exists() else shutil.which("py-spy")


def classify(stack: str) -> str:
    frames = stack.split(";")
    for i, frame in enumerate(frames):
        if LOOP_RUN.search(frame):
            frames = frames[i + 1 :]
            if not frames:
                return LOOP_NATIVE
            break
    for name, pattern in CATEGORIES:
        if any(pattern.search(frame) for frame in frames):
            return name
    return OTHER


def _leaf(stack: str) -> str:
    frame = stack.rsplit(";", 1)[-1]
    return re.sub(r"\(.*/(site-packages|lib/python3\.\d+|work/[^/]+)/", "(", frame)


def profile(args: argparse.Namespace) -> dict[str, object]:
    py_spy = _find_py_spy()
    event = json.dumps({"data": "x" * args.event_bytes}).encode() if args.event_bytes else b'{"ping": 1}'
    handler = "app.echo" if args.event_bytes else "app.handler"
    expect = event if args.event_bytes else b'{"ok": true}'
    out: dict[str, object] = {"freezer": None, "event_bytes": len(event)}
    with Server.lambda_freeze(handler, freezer=args.freezer, src=args.src) as server:
        out["freezer"] = server.freezer
        client = CLIENTS["raw"](server.host, server.port)
        timed_posts(client, INVOKE_PATH, event, args.warmup, expect)
        envs = json.loads(client.get("/_lambda-freeze/environments")[1])
        pids = {"emulator": server.pid, "runtime": envs[0]["pid"]}
        before = {k: cpu_ns(p) for k, p in pids.items()}
        client_before = time.process_time_ns()
        plain = timed_posts(client, INVOKE_PATH, event, args.invokes, expect)
        after = {k: cpu_ns(p) for k, p in pids.items()}
        cpu = {k: (after[k] - before[k]) / 1e3 / args.invokes for k in pids}  # type: ignore[operator]
        cpu["client"] = (time.process_time_ns() - client_before) / 1e3 / args.invokes
        out["latency"] = plain.summary()
        out["cpu_us_per_invoke"] = cpu
        if py_spy is None or args.no_profile:
            if py_spy is None:
                out["profile_error"] = "py-spy not found (pip install py-spy)"
            client.close()
            return out
        raw_path = args.raw_out or Path(tempfile.mkstemp(suffix=".folded")[1])
        spy = subprocess.Popen(
            [
                py_spy,
                "record",
                "--pid",
                str(server.pid),
                "--nonblocking",
                "--format",
                "raw",
                "--full-filenames",
                "--rate",
                str(args.rate),
                "-o",
                str(raw_path),
            ],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
        )
        assert spy.stdout is not None
        banner = spy.stdout.readline().decode()  # "py-spy> Sampling process ..." once it is attached
        if "Sampling" not in banner:
            spy.kill()
            out["profile_error"] = f"py-spy did not start: {banner.strip()} {spy.stdout.read().decode()[:500]}"
            client.close()
            return out
        before_emu = cpu_ns(server.pid)
        profiled = timed_posts(client, INVOKE_PATH, event, args.invokes, expect)
        after_emu = cpu_ns(server.pid)
        spy.send_signal(signal.SIGINT)
        spy.communicate(timeout=60)
        client.close()
    out["latency_while_profiled"] = profiled.summary()
    out["emulator_cpu_us_per_invoke_while_profiled"] = (after_emu - before_emu) / 1e3 / args.invokes  # type: ignore[operator]
    totals: collections.Counter[str] = collections.Counter()
    leaves: collections.Counter[str] = collections.Counter()
    for line in Path(raw_path).read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack:
            continue
        totals[classify(stack)] += int(count)
        leaves[_leaf(stack)] += int(count)
    if args.raw_out is None:
        os.unlink(raw_path)
    samples = sum(totals.values())
    emulator_us = cpu["emulator"]
    out["samples"] = samples
    out["categories"] = (
        [
            {"category": name, "share": n / samples, "us_per_invoke": emulator_us * n / samples}
            for name, n in totals.most_common()
        ]
        if samples
        else []
    )
    out["top_leaves"] = [{"frame": f, "share": n / samples} for f, n in leaves.most_common(args.top)] if samples else []
    return out


# -------------------------------------------------------------------------------------------- micro-benchmarks
def _per_call_us(fn: Callable[[], object], n: int, repeats: int = 5) -> float:
    """Median over ``repeats`` runs of ``n`` calls, in µs per call (median: steadier than best on a shared box)."""
    fn()
    runs = []
    for _ in range(repeats):
        t0 = time.perf_counter_ns()
        for _ in range(n):
            fn()
        runs.append((time.perf_counter_ns() - t0) / n / 1e3)
    runs.sort()
    return runs[len(runs) // 2]


def micro(args: argparse.Namespace) -> dict[str, object]:
    if args.src is not None:
        sys.path.insert(0, str(args.src))
    from emulator.engine import freezer as fz
    from emulator.engine import logs
    from emulator.engine.invocation import new_trace_id
    from emulator.engine.memory import PeakRssReader, process_tree
    from emulator.errors import FreezerUnavailable

    out: dict[str, object] = {}
    freezers: dict[str, object] = {}
    for name in ("cgroup2", "cgroup1", "sigstop"):
        try:
            backend = fz.create_freezer(name)
        except FreezerUnavailable as exc:
            freezers[name] = {"unavailable": exc.message}
            continue
        group = backend.group(f"micro-{os.getpid()}")
        attach = [os.fsencode(p) for p in group.attach_paths]

        def join_group(attach: list[bytes] = attach) -> None:
            for path in attach:
                fd = os.open(path, os.O_WRONLY)
                os.write(fd, b"0")
                os.close(fd)

        read_fd, write_fd = os.pipe()
        # A child blocked in read(), as a runtime is blocked in its `next` call.
        child = subprocess.Popen(
            [sys.executable, "-S", "-c", "import os, sys; os.read(int(sys.argv[1]), 1)", str(read_fd)],
            pass_fds=(read_fd,),
            process_group=0,
            preexec_fn=join_group,
        )
        os.close(read_fd)
        group.attached(child.pid)
        try:
            n = 1000
            freeze_ns = thaw_ns = 0
            for _ in range(n):
                t0 = time.perf_counter_ns()
                group.freeze()
                t1 = time.perf_counter_ns()
                group.thaw()
                t2 = time.perf_counter_ns()
                freeze_ns += t1 - t0
                thaw_ns += t2 - t1

            def members(group: fz.FreezerGroup = group, pid: int = child.pid) -> list[int]:
                return group.pids() if group.attach_paths else process_tree(pid)

            pids = members()
            rss = PeakRssReader()
            result = {
                "freeze_us": freeze_ns / n / 1e3,
                "thaw_us": thaw_ns / n / 1e3,
                "members_us": _per_call_us(members, 1000),
                "peak_rss_us": _per_call_us(lambda pids=pids, rss=rss: rss.total_kb(pids), 1000),
            }
            rss.close()
            result.update(_kept_open(group, pids))
            freezers[name] = result
        finally:
            os.write(write_fd, b"x")
            os.close(write_fd)
            child.wait()
            asyncio.run(group.remove())
            backend.close()
    out["freezer"] = freezers

    rid = str(uuid.uuid4())
    line = logs.report_line(rid, duration_ms=1.23, memory_mb=128, max_memory_used_mb=15)
    with open(os.devnull, "w") as devnull:
        sink = logs.StreamSink(devnull)
        out["log_line_to_devnull_us"] = _per_call_us(lambda: sink("function", "function-1", line), 5000)
    read_end, write_end = os.pipe()

    def drain() -> None:
        while os.read(read_end, 1 << 16):
            pass

    threading.Thread(target=drain, daemon=True).start()
    with os.fdopen(write_end, "w") as pipe:
        sink = logs.StreamSink(pipe)
        out["log_line_to_pipe_us"] = _per_call_us(lambda: sink("function", "function-1", line), 5000)
    out["report_line_format_us"] = _per_call_us(
        lambda: logs.report_line(rid, duration_ms=1.23, memory_mb=128, max_memory_used_mb=15), 5000
    )
    small = b'{"ping": 1}'
    big = json.dumps({"data": "x" * 1_000_000}).encode()
    out["json_loads_small_us"] = _per_call_us(lambda: json.loads(small), 5000)
    out["json_loads_1mb_us"] = _per_call_us(lambda: json.loads(big), 20)
    try:
        import orjson  # type: ignore[import-not-found]

        out["orjson_loads_1mb_us"] = _per_call_us(lambda: orjson.loads(big), 20)
    except ImportError:
        pass
    out["uuid4_us"] = _per_call_us(lambda: str(uuid.uuid4()), 5000)
    out["trace_id_us"] = _per_call_us(new_trace_id, 5000)
    return out


def _paired_us(a: Callable[[], object], b: Callable[[], object], n: int = 1000) -> tuple[float, float]:
    """µs per call of ``a`` and ``b``, called alternately so that both see the same machine load."""
    a()
    b()
    ta = tb = 0
    clock = time.perf_counter_ns
    for _ in range(n):
        t0 = clock()
        a()
        t1 = clock()
        b()
        t2 = clock()
        ta += t1 - t0
        tb += t2 - t1
    return ta / n / 1e3, tb / n / 1e3


def _kept_open(group: object, pids: list[int]) -> dict[str, float]:
    """The same kernel operations with each file opened once and kept open (one syscall each), paired with
    open/operate/close as pathlib and ``open`` do them, for the freezer's control file, cgroup.procs and
    /proc/<pid>/status."""
    out: dict[str, float] = {}
    path = getattr(group, "path", None)
    if path is not None:
        ctl, on, off = (
            ("cgroup.freeze", b"1", b"0")
            if (path / "cgroup.freeze").exists()
            else ("freezer.state", b"FROZEN", b"THAWED")
        )
        ctl_path = path / ctl
        fd = os.open(ctl_path, os.O_WRONLY)

        def reopen() -> None:
            for data in (on, off):
                f = os.open(ctl_path, os.O_WRONLY)
                os.write(f, data)
                os.close(f)

        def kept() -> None:
            os.write(fd, on)
            os.write(fd, off)

        out["freeze_thaw_reopen_us"], out["freeze_thaw_kept_fd_us"] = _paired_us(reopen, kept)
        os.close(fd)
        procs = path / "cgroup.procs"
        pfd = os.open(procs, os.O_RDONLY)
        out["members_pathlib_us"], out["members_kept_fd_us"] = _paired_us(
            lambda: [int(x) for x in procs.read_text().split()],
            lambda: [int(x) for x in os.pread(pfd, 65536, 0).split()],
        )
        os.close(pfd)
    fds = [os.open(f"/proc/{pid}/status", os.O_RDONLY) for pid in pids]

    def status_open() -> int:
        total = 0
        for pid in pids:
            with open(f"/proc/{pid}/status", "rb") as status:
                for line in status:
                    if line.startswith(b"VmHWM:"):
                        total += int(line.split()[1])
                        break
        return total

    def status_kept() -> int:
        total = 0
        for f in fds:
            data = os.pread(f, 4096, 0)
            at = data.find(b"VmHWM:")
            total += int(data[at + 6 : data.index(b"kB", at)])
        return total

    out["peak_rss_open_us"], out["peak_rss_kept_fd_us"] = _paired_us(status_open, status_kept)
    for f in fds:
        os.close(f)
    return out


def floors(args: argparse.Namespace) -> dict[str, object]:
    out: dict[str, object] = {}
    for name, server in (("aiohttp", Server.floor()), ("bare uvloop protocol", Server.floor(raw=True))):
        with server:
            client = CLIENTS["raw"](server.host, server.port)
            timed_posts(client, INVOKE_PATH, b'{"ping": 1}', 300)
            before = cpu_ns(server.pid)
            result = timed_posts(client, INVOKE_PATH, b'{"ping": 1}', args.invokes)
            after = cpu_ns(server.pid)
            client.close()
        out[name] = {**result.summary(), "server_cpu_us": (after - before) / 1e3 / args.invokes}  # type: ignore[operator]
    return out


# ---------------------------------------------------------------------------------------------------- output
def print_text(report: dict[str, object]) -> None:
    p = report.get("profile")
    if p:
        lat = p["latency"]
        cpu = p["cpu_us_per_invoke"]
        print(
            f"warm invoke, freezer {p['freezer']}, {p['event_bytes']:,}-byte event: p50 {lat['p50_ms']:.3f} ms, "
            f"{lat['invokes_per_s']:,.0f} invokes/s; CPU µs per invoke: "
            + "  ".join(f"{k} {v:.0f}" for k, v in cpu.items())
        )
        if p.get("profile_error"):
            print(f"  (no profile: {p['profile_error']})")
        if p.get("categories"):
            print(
                f"\nemulator CPU by category ({p['samples']:,} py-spy samples; µs scaled to the unprofiled "
                f"{cpu['emulator']:.0f} µs per invoke):"
            )
            for c in p["categories"]:
                print(f"  {c['share'] * 100:5.1f} %  {c['us_per_invoke']:7.1f} µs  {c['category']}")
            print("\nhottest frames (self):")
            for leaf in p["top_leaves"]:
                print(f"  {leaf['share'] * 100:5.1f} %  {leaf['frame']}")
    m = report.get("micro")
    if m:
        print("\nengine pieces, timed alone (µs per call):")
        for name, f in m["freezer"].items():
            if "unavailable" in f:
                print(f"  {name:<8} unavailable: {f['unavailable']}")
            else:
                print(
                    f"  {name:<8} freeze {f['freeze_us']:6.1f}  thaw {f['thaw_us']:6.1f}  list members "
                    f"{f['members_us']:5.1f}  peak RSS of members {f['peak_rss_us']:5.1f}"
                )
                if "freeze_thaw_reopen_us" in f:
                    print(
                        f"           kept-open fds instead of open+close, paired: freeze+thaw "
                        f"{f['freeze_thaw_reopen_us']:.1f} → {f['freeze_thaw_kept_fd_us']:.1f}, cgroup.procs "
                        f"{f['members_pathlib_us']:.1f} → {f['members_kept_fd_us']:.1f}, /proc status "
                        f"{f['peak_rss_open_us']:.1f} → {f['peak_rss_kept_fd_us']:.1f}"
                    )
                elif "peak_rss_open_us" in f:
                    print(
                        f"           kept-open fd instead of open+close, paired: /proc status "
                        f"{f['peak_rss_open_us']:.1f} → {f['peak_rss_kept_fd_us']:.1f}"
                    )
        print(
            f"  log line: to /dev/null {m['log_line_to_devnull_us']:.1f}, to a pipe {m['log_line_to_pipe_us']:.1f} "
            f"(write + flush; 3 lines per invoke), REPORT format {m['report_line_format_us']:.1f}"
        )
        extra = f", orjson 1 MB {m['orjson_loads_1mb_us']:.0f}" if "orjson_loads_1mb_us" in m else ""
        print(
            f"  json.loads: small {m['json_loads_small_us']:.1f}, 1 MB {m['json_loads_1mb_us']:.0f}{extra}; "
            f"uuid4 {m['uuid4_us']:.1f}, trace id {m['trace_id_us']:.1f}"
        )
    fl = report.get("floors")
    if fl:
        print("\nHTTP floor, one round trip with the same client (an invoke makes three: invoke, next, response):")
        for name, f in fl.items():
            print(
                f"  {name:<22} p50 {f['p50_ms'] * 1000:6.1f} µs  {f['invokes_per_s']:7,.0f} req/s  "
                f"server CPU {f['server_cpu_us']:6.1f} µs per request"
            )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--freezer", default="auto", choices=("auto", "cgroup2", "cgroup1", "sigstop", "none"))
    parser.add_argument("--invokes", type=int, default=5000, help="invokes per run (default 5000)")
    parser.add_argument("--warmup", type=int, default=300)
    parser.add_argument("--event-bytes", type=int, default=0, help="echo an event of this many bytes (0: trivial)")
    parser.add_argument("--rate", type=int, default=1000, help="py-spy samples per second")
    parser.add_argument("--top", type=int, default=15, help="hottest frames to list")
    parser.add_argument("--raw-out", type=Path, help="keep py-spy's folded stacks here")
    parser.add_argument("--src", type=Path, help="run the emulator from this source tree")
    parser.add_argument("--no-profile", action="store_true", help="skip py-spy (CPU per invoke only)")
    parser.add_argument("--skip", action="append", default=[], choices=("profile", "micro", "floor"))
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    report: dict[str, object] = {}
    if "profile" not in args.skip:
        report["profile"] = profile(args)
    if "micro" not in args.skip:
        report["micro"] = micro(args)
    if "floor" not in args.skip:
        report["floors"] = floors(args)
    return emit(report, args.json, lambda: print_text(report))


if __name__ == "__main__":
    sys.exit(main())

"""How often each of the Sequelize guide's Lambda races reproduces, frozen and unfrozen (samples/node/sequelize).

    .venv/bin/python benchmarks/sequelize_races.py                        # all, 20 runs each way (~10 min)
    .venv/bin/python benchmarks/sequelize_races.py --only stale_pool_fin  # one of them (names: --help)
    .venv/bin/python benchmarks/sequelize_races.py --jobs 1 --freezer sigstop  # one run at a time; another freezer
    .venv/bin/python benchmarks/sequelize_races.py --json                 # one JSON document

Each run starts the sample afresh (its own emulator, environment and fault proxy; one MariaDB user per reproduction)
and replays the steps of tests/test_samples_node.py; "reproduced" is the failure the reproduction is about (for the
recommended configuration: anything of one invocation failing or showing up in the next). Under each rate, the
outcomes seen and how often. Needs `samples/node/install.sh`, `lambda-freeze install-node-ric` and the MariaDB of
LAMBDA_FREEZE_MYSQL_DSN (default mysql://root@127.0.0.1:3306/test).
"""

from __future__ import annotations

import argparse
import json
import logging
import multiprocessing
import os
import re
import sys
import time
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from emulator.databases import DatabaseLogin, MySQLUsers, mysql_dsn
from emulator.harness import InvokeResult, LambdaFreeze, LambdaFunction
from emulator.proxy import Latency, Timeout

SAMPLE = Path(__file__).resolve().parent.parent / "samples/node/sequelize"
RUNTIME = "nodejs20.x"
SIDES = ("frozen", "unfrozen")
HANDSHAKE_LATENCY_MS = 200
ACQUIRE_S = 3.0  # the samples' pool.acquire
CONNECT_TIMEOUT_S = 5.0  # the samples' mysql2 connectTimeout
EPIPE = "This socket has been ended by the other party"
ACQUIRE_TIMEOUT = "SequelizeConnectionAcquireTimeoutError: Operation timeout"


@dataclass(frozen=True)
class Outcome:
    label: str
    reproduced: bool


@dataclass
class Run:
    """What one run needs: a fresh harness, the reproduction's database login, the freezer."""

    lf: LambdaFreeze
    db: DatabaseLogin
    freezer: str

    def function(
        self, sample: str, handler: str = "index.handler", *, close: str = "mirror", **settings: Any
    ) -> LambdaFunction:
        env = {k: v for k, v in self.db.env().items() if k not in ("DB_HOST", "DB_PORT")}
        return self.lf.function(  # the project is the code: one package, a handler per folder
            SAMPLE,
            f"{sample}/{handler}",
            runtime=RUNTIME,
            freezer=self.freezer,
            env={**env, **settings.pop("env", {})},
            upstreams={"DB": f"{self.db.host}:{self.db.port} close={close}"},
            **settings,
        )


def outcome(result: InvokeResult) -> str:
    if result.ok:
        return "ok"
    message = (result.error_message or "").split(" Error: ")[-1]  # Runtime.ExitError: "RequestId: … Error: …"
    return f"{result.error_type}: {message}"


def cold(result: InvokeResult) -> bool:
    return "Init Duration" in result.log.splitlines()[-1]


def between(fn: LambdaFunction, first: InvokeResult, second: InvokeResult) -> str:
    """The function's log lines after the first invocation's REPORT and before the second's START."""
    lines = fn.logs
    start = next(i for i, line in enumerate(lines) if line.startswith(f"REPORT RequestId: {first.request_id}"))
    end = next(i for i, line in enumerate(lines) if line.startswith(f"START RequestId: {second.request_id}"))
    return "\n".join(lines[start + 1 : end])


# ------------------------------------------------------------------------------------------- the reproductions
def counter(run: Run) -> Outcome:
    fn = run.function("counter")
    first = fn.invoke({})
    fn.stay_frozen(3.0)
    second = fn.invoke({})
    slow = re.compile(rf"Slow timeout invoked\. Request id: {first.request_id} \| Elapsed ms: (\d+)")
    lines = second.log.splitlines()
    found = [(i, int(m[1])) for i, line in enumerate(lines) if (m := slow.search(line))]
    fast = [i for i, line in enumerate(lines) if f"Fast timeout invoked. Request id: {second.request_id}" in line]
    returns = f"returns {first.payload}, {second.payload}"
    if found and fast and found[0][0] < fast[0] and found[0][1] >= 3000:
        return Outcome(f"{returns}; the slow timer of invocation 1 fires in invocation 2", True)
    where = "between the invocations" if slow.search(between(fn, first, second)) else "elsewhere"
    return Outcome(f"{returns}; the slow timer of invocation 1 fires {where}", False)


def stale_pool(close: str) -> Callable[[Run], Outcome]:
    def race(run: Run) -> Outcome:
        fn = run.function("stale_pool", close=close, timeout_s=5)
        first = fn.invoke({})
        fn.stay_frozen(1.5)
        second = fn.invoke({})
        if second.ok:
            same = second.payload["connectionId"] == first.payload["connectionId"]
            return Outcome("ok, the same connection" if same else "ok, a new connection", False)
        # FIN: the guide's EPIPE; RST: any failure (mysql2 is expected to survive it).
        return Outcome(outcome(second), second.error_message == EPIPE if close == "fin" else True)

    return race


def never_empty(run: Run) -> Outcome:
    fn = run.function("never_empty", timeout_s=2)
    first = fn.invoke({})
    second = fn.invoke({})
    reproduced = first.error_type == "Sandbox.Timedout" and cold(second)
    return Outcome(f"{outcome(first)}, then {'a fresh INIT' if cold(second) else 'warm'}", reproduced)


def acquire_timeout(run: Run) -> Outcome:
    fn = run.function("floating_query", timeout_s=10)
    fn.faults("DB").add("handshake", Latency(latency_ms=HANDSHAKE_LATENCY_MS), direction="downstream")
    first = fn.invoke({})
    fn.stay_frozen(ACQUIRE_S + 0.5)
    second = fn.invoke({"wait": True})
    failed = f"query of {first.request_id} failed: {ACQUIRE_TIMEOUT}"
    if failed in second.log:
        return Outcome(f"invocation 2 {outcome(second)}; invocation 1's query: acquire timeout in invocation 2", True)
    done = "returned" if f"query of {first.request_id} returned" in between(fn, first, second) else "?"
    return Outcome(f"invocation 2 {outcome(second)}; invocation 1's query {done} between the invocations", False)


def unhandled_rejection(run: Run) -> Outcome:
    fn = run.function("floating_query", "index.uncaught", timeout_s=10)
    fn.faults("DB").add("handshake", Latency(latency_ms=HANDSHAKE_LATENCY_MS), direction="downstream")
    fn.invoke({})
    fn.stay_frozen(ACQUIRE_S + 0.5)
    second = fn.invoke({})
    third = fn.invoke({})
    label = f"{outcome(second)}; invocation 3 {outcome(third)}{', cold' if cold(third) else ''}"
    return Outcome(label, second.error_type == "Runtime.ExitError")


def connect_timeout(run: Run) -> Outcome:
    fn = run.function("floating_query", timeout_s=10)
    fn.faults("DB").add("blackhole", Timeout(timeout_ms=0), direction="downstream")
    first = fn.invoke({})
    fn.stay_frozen((ACQUIRE_S + CONNECT_TIMEOUT_S) / 2)
    fn.faults("DB").remove("blackhole")
    second = fn.invoke({"wait": True})
    failed = f"query of {first.request_id} failed: {ACQUIRE_TIMEOUT}"
    where = "in invocation 2" if failed in second.log else "between" if failed in between(fn, first, second) else "?"
    etimedout = second.error_type == "SequelizeConnectionError" and second.error_message == "connect ETIMEDOUT"
    label = f"{outcome(second)}; invocation 1's acquire timeout {where}"
    return Outcome(label, etimedout and where == "in invocation 2")


def recommended(kind: str) -> Callable[[Run], Outcome]:
    """The guide's configuration under each of the races above: reproduced if invocation 2 fails, or if anything of
    invocation 1 shows in it, or if it is a cold start."""

    def race(run: Run) -> Outcome:
        settings: dict[str, Any] = {"timeout_s": 10, "env": {"FUNCTION_TIMEOUT_MS": "10000"}}
        handler = {"uncaught": "index.uncaught", "callback": "index.callbackHandler"}.get(kind, "index.handler")
        fn = run.function("recommended", handler, close="fin" if kind == "stale" else "mirror", **settings)
        if kind == "acquire" or kind == "uncaught":
            fn.faults("DB").add("handshake", Latency(latency_ms=HANDSHAKE_LATENCY_MS), direction="downstream")
        if kind == "dropped":
            fn.faults("DB").add("blackhole", Timeout(timeout_ms=0), direction="downstream")
        first = fn.invoke({"wait": kind == "stale"})
        pause_s = {"stale": 1.5, "callback": 0.1, "dropped": (ACQUIRE_S + CONNECT_TIMEOUT_S) / 2}
        fn.stay_frozen(pause_s.get(kind, ACQUIRE_S + 0.5))
        if kind == "dropped":
            fn.faults("DB").remove("blackhole")
        second = fn.invoke({"wait": True})
        leaked = first.request_id in second.log
        label = f"invocation 1 {outcome(first)}; invocation 2 {outcome(second)}{'; leaked' if leaked else ''}"
        return Outcome(label, not second.ok or leaked or cold(second))

    return race


@dataclass(frozen=True)
class Reproduction:
    name: str
    title: str
    race: Callable[[Run], Outcome]
    wait_timeout_s: int | None = None


REPRODUCTIONS = (
    Reproduction("counter", "1  counter: slow timer logs in invocation 2", counter),
    Reproduction("stale_pool_fin", "2  {min:1,max:1}, close as FIN: EPIPE", stale_pool("fin"), 1),
    Reproduction("stale_pool_rst", "2  {min:1,max:1}, close as RST: fails", stale_pool("mirror"), 1),
    Reproduction("never_empty", "3  callback, min 1: timeout, fresh INIT", never_empty),
    Reproduction("acquire_timeout", "4a acquire timeout inside invocation 2", acquire_timeout),
    Reproduction("unhandled_rejection", "4b unhandled rejection kills invocation 2", unhandled_rejection),
    Reproduction("connect_timeout", "4c ETIMEDOUT, rejection inside invocation 2", connect_timeout),
    Reproduction("recommended_stale", "5  recommended, close as FIN: fails", recommended("stale"), 1),
    Reproduction("recommended_callback", "5  recommended, callback handler: fails", recommended("callback")),
    Reproduction("recommended_acquire", "5  recommended, (a): fails or leaks", recommended("acquire")),
    Reproduction("recommended_uncaught", "5  recommended, (b): fails or leaks", recommended("uncaught")),
    Reproduction("recommended_dropped", "5  recommended, (c): next fails or leaks", recommended("dropped")),
)


# ----------------------------------------------------------------------------------------------------- running
def one_run(name: str, db: DatabaseLogin, freezer: str) -> tuple[Outcome, str]:
    """One run, in a worker process of its own: emulators in one process share their cgroup instance directory."""
    logging.basicConfig(level=logging.ERROR)  # not the "freezer 'none'" warning of every unfrozen run
    (reproduction,) = [r for r in REPRODUCTIONS if r.name == name]
    with LambdaFreeze(freezer=freezer) as lf:
        try:
            result = reproduction.race(Run(lf, db, freezer))
        except Exception as exc:  # a run that could not be carried out is reported, not fatal to the others
            result = Outcome(f"run failed: {type(exc).__name__}: {exc}", False)
        backend = next((e["freezer"] for f in lf.functions for e in f.environments()), freezer)
    return result, backend


def measure(names: list[str], runs: int, jobs: int, freezer: str) -> dict[str, Any]:
    users = MySQLUsers(mysql_dsn())
    users.check()
    chosen = [r for r in REPRODUCTIONS if r.name in names]
    logins = {r.name: users.create(wait_timeout_s=r.wait_timeout_s) for r in chosen}
    freezers = {"frozen": freezer, "unfrozen": "none"}
    tasks = [(r, side) for r in chosen for side in SIDES for _ in range(runs)]
    started = time.monotonic()
    try:
        with ProcessPoolExecutor(max_workers=jobs, mp_context=multiprocessing.get_context("spawn")) as pool:
            futures = [pool.submit(one_run, r.name, logins[r.name], freezers[side]) for r, side in tasks]
            done = [future.result() for future in futures]
    finally:
        users.drop_all()
    results: dict[str, Any] = {}
    backends: set[str] = set()
    for (reproduction, side), (result, backend) in zip(tasks, done, strict=True):
        entry = results.setdefault(reproduction.name, {"title": reproduction.title})
        counts = entry.setdefault(side, {"runs": 0, "reproduced": 0, "outcomes": {}})
        counts["runs"] += 1
        counts["reproduced"] += result.reproduced
        counts["outcomes"][result.label] = counts["outcomes"].get(result.label, 0) + 1
        if side == "frozen":
            backends.add(backend)
    return {
        "runs": runs,
        "jobs": jobs,
        "freezer": {"frozen": "/".join(sorted(backends)) or freezer, "unfrozen": "none"},
        "seconds": round(time.monotonic() - started, 1),
        "load_average": [round(x, 2) for x in os.getloadavg()],
        "reproductions": results,
    }


def report(figures: dict[str, Any]) -> str:
    load = " ".join(map(str, figures["load_average"]))
    lines = [
        f"Sequelize races: {figures['runs']} runs each, frozen ({figures['freezer']['frozen']}) and unfrozen (none), "
        f"{figures['jobs']} at a time; {figures['seconds']} s, load average {load}",
        "",
        f"{'reproduction (reproduced = ...)':<52}{'frozen':>9}{'unfrozen':>10}",
    ]
    for entry in figures["reproductions"].values():
        frozen, unfrozen = entry["frozen"], entry["unfrozen"]
        lines.append(
            f"{entry['title']:<52}{frozen['reproduced']:>5}/{frozen['runs']:<3}{unfrozen['reproduced']:>6}/"
            f"{unfrozen['runs']:<3}"
        )
        for side in SIDES:
            for label, count in sorted(entry[side]["outcomes"].items(), key=lambda item: -item[1]):
                lines.append(f"     {side:<8} {count:>3} × {label}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=20, help="runs per reproduction and freezer (default 20)")
    parser.add_argument("--jobs", type=int, default=4, help="runs carried out at the same time (default 4)")
    parser.add_argument(
        "--only",
        nargs="+",
        choices=[r.name for r in REPRODUCTIONS],
        metavar="NAME",
        help=f"some of: {', '.join(r.name for r in REPRODUCTIONS)}",
    )
    parser.add_argument(
        "--freezer",
        default="auto",
        choices=["auto", "cgroup2", "cgroup1", "sigstop"],
        help="the freezer of the frozen runs (default auto); the unfrozen ones use none",
    )
    parser.add_argument("--json", action="store_true", help="print one JSON document instead of the table")
    args = parser.parse_args(argv)
    if not (SAMPLE / "node_modules/.lambda-freeze-lock.sha256").is_file():
        print("the sample's node_modules is not installed: run samples/node/install.sh", file=sys.stderr)
        return 2
    figures = measure(args.only or [r.name for r in REPRODUCTIONS], args.runs, args.jobs, args.freezer)
    print(json.dumps(figures, indent=2) if args.json else report(figures))
    return 0


if __name__ == "__main__":
    sys.exit(main())

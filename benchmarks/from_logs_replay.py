"""How faithfully ``scenario from-logs`` replays logs: the frozen gaps of recorded runs, two environments whose
invocations overlapped (replayed at the same time, at the same offsets), and how often the Sequelize stale pool's
recorded failure comes back (and the recommended configuration's logs stay clean).

    .venv/bin/python benchmarks/from_logs_replay.py               # 10 replays each (~1 min)
    .venv/bin/python benchmarks/from_logs_replay.py --runs 20

Each recording is a run of the emulator with its function logs written as ``aws logs tail`` prints CloudWatch's
(``repro --record-logs``); it is converted by ``lambda-freeze scenario from-logs`` and replayed with ``repro``'s
runner. Needs the Node.js samples' node_modules and the MariaDB of LAMBDA_FREEZE_MYSQL_DSN.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import os
import sys
import tempfile
from pathlib import Path

from emulator import scenario as sc
from emulator.cli import main
from emulator.scenario.logs.read import read_logs
from emulator.scenario.logs.rebuild import rebuild
from emulator.scenario.logs.record import TailRecorder
from emulator.scenario.runner import RunResult, run_scenario

ROOT = Path(__file__).resolve().parent.parent
SEQUELIZE = ROOT / "samples/node/sequelize"
BASIC = ROOT / "tests/functions/python/basic"
SEQUELIZE_RUN = """
runs = 1
[databases.mysql]
kind = "mysql"
wait_timeout_s = 1
[functions.app]
code_dir = "{code}"
handler = "{folder}/index.handler"
runtime = "nodejs20.x"
timeout = 5
env = {{ FUNCTION_TIMEOUT_MS = 5000 }}
upstreams = {{ DB = "mysql close=fin" }}
[[steps]]
invoke = {{ as = "first" }}
[[steps]]
stay_frozen = 1.5
[[steps]]
invoke = {{ as = "second" }}
[[steps]]
expect = {{ invoke = "first", ok = true }}
"""
WITH = """
[databases.mysql]
kind = "mysql"
wait_timeout_s = 1
[function]
timeout = 5
env = { FUNCTION_TIMEOUT_MS = "5000" }
upstreams = { DB = "mysql close=fin" }
"""
GAPS_RUN = """
runs = 1
[functions.app]
code_dir = "{code}"
handler = "app.handler"
[[steps]]
invoke = {{ as = "a" }}
[[steps]]
stay_frozen = 0.3
[[steps]]
invoke = {{ as = "b" }}
[[steps]]
stay_frozen = 0.9
[[steps]]
invoke = {{ as = "c" }}
[[steps]]
stay_frozen = 2.0
[[steps]]
invoke = {{ as = "d" }}
[[steps]]
expect = {{ invoke = "a", ok = true }}
"""


# Two invocations that only succeed together (the test function's "meet"), then one that its environment serves after
# the first: logs of two environments at once.
CONCURRENT_RUN = """
runs = 1
[functions.app]
code_dir = "{code}"
handler = "app.handler"
timeout = 25
env = {{ MEET_DIR = "${{run.dir}}" }}
[[steps]]
invoke = {{ as = "a", at = 0, payload = {{ action = "meet", name = "a", other = "b" }} }}
[[steps]]
invoke = {{ as = "b", at = 0, payload = {{ action = "meet", name = "b", other = "a" }} }}
[[steps]]
invoke = {{ as = "c", at = 0.5, after = "a", payload = {{ action = "echo" }} }}
[[steps]]
expect = {{ invoke = "a", ok = true }}
"""
CONCURRENT_EVENTS = """{"action": "meet", "name": "a", "other": "b"}
{"action": "meet", "name": "b", "other": "a"}
{"action": "echo"}
"""
CONCURRENT_WITH = """
[function]
timeout = 25
env = { MEET_DIR = "${run.dir}" }
"""


def record(path: Path, out: Path) -> RunResult:
    buffer = io.StringIO()
    [result] = run_scenario(sc.load(path), runs=1, log_sink=TailRecorder(buffer))
    out.write_text(buffer.getvalue())
    return result


def convert(log: Path, code: Path, handler: str, runtime: str, out: Path, *extra: str) -> None:
    with contextlib.redirect_stderr(io.StringIO()) as err:
        status = main(["scenario", "from-logs", str(log), "--function", str(code), "--handler", handler,
                       "--runtime", runtime, "-o", str(out), *extra])
    if status != 0:
        sys.exit(f"from-logs failed: {err.getvalue()}")


def gaps(log: Path) -> list[float]:
    lines, _, _ = read_logs([log])
    [env] = rebuild(lines).environments
    return [gap for gap in env.gaps_s if gap is not None]


def requested(log: Path) -> list[float]:
    """When each invocation was asked for (its START, less a cold start's Init Duration), after the first was."""
    lines, _, _ = read_logs([log])
    times = sorted((i.start_s or 0.0) - (i.init_ms or 0.0) / 1000 for i in rebuild(lines).invocations)
    return [t - times[0] for t in times]


def main_(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=10)
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as name:
        tmp = Path(name)
        (tmp / "with.toml").write_text(WITH)

        (tmp / "gaps.toml").write_text(GAPS_RUN.format(code=BASIC))
        record(tmp / "gaps.toml", tmp / "gaps.log")
        convert(tmp / "gaps.log", BASIC, "app.handler", "python3.11", tmp / "gaps_replay.toml")
        want = gaps(tmp / "gaps.log")
        worst = 0.0
        for run in range(args.runs):
            record(tmp / "gaps_replay.toml", tmp / f"gaps_replayed_{run}.log")
            got = gaps(tmp / f"gaps_replayed_{run}.log")
            worst = max(worst, *(abs(a - b) for a, b in zip(want, got, strict=True)))
        print(f"gaps recorded {', '.join(f'{g:.3f}' for g in want)} s; replayed {args.runs} times: "
              f"largest difference {worst * 1000:.1f} ms")

        (tmp / "concurrent.toml").write_text(CONCURRENT_RUN.format(code=BASIC))
        (tmp / "events.jsonl").write_text(CONCURRENT_EVENTS)
        (tmp / "concurrent_with.toml").write_text(CONCURRENT_WITH)
        record(tmp / "concurrent.toml", tmp / "concurrent.log")
        convert(tmp / "concurrent.log", BASIC, "app.handler", "python3.11", tmp / "concurrent_replay.toml",
                "--events", str(tmp / "events.jsonl"), "--with", str(tmp / "concurrent_with.toml"))
        want = requested(tmp / "concurrent.log")
        worst, back = 0.0, 0
        for run in range(args.runs):
            back += record(tmp / "concurrent_replay.toml", tmp / f"concurrent_replayed_{run}.log").reproduced
            got = requested(tmp / f"concurrent_replayed_{run}.log")
            worst = max(worst, *(abs(a - b) for a, b in zip(want, got, strict=True)))
        print(f"two environments at once: requests recorded at +{', +'.join(f'{t:.3f}' for t in want)} s; replayed "
              f"{args.runs} times: both meetings (possible only at the same time) and the third invocation back on "
              f"{back}/{args.runs}; requests (START less Init Duration) largest difference {worst * 1000:.1f} ms")

        (tmp / "stale.toml").write_text(SEQUELIZE_RUN.format(code=SEQUELIZE, folder="stale_pool"))
        tries = 0
        while record(tmp / "stale.toml", tmp / "stale.log").steps[2].outcome != "SequelizeDatabaseError":
            tries += 1  # the failure is a race: the recording must show it to be worth replaying
            if tries == 10:
                sys.exit("the stale pool did not fail in 10 recorded runs")
        tries += 1
        convert(tmp / "stale.log", SEQUELIZE, "stale_pool/index.handler", "nodejs20.x", tmp / "stale_replay.toml",
                "--with", str(tmp / "with.toml"))
        replays = run_scenario(sc.load(tmp / "stale_replay.toml"), runs=args.runs)
        outcomes = [r.steps[2].outcome for r in replays]
        print(f"stale pool: recorded failure after {tries} recording(s); replayed {args.runs} times: failure back on "
              f"{sum(r.reproduced for r in replays)}/{args.runs} (second invocation: "
              f"{', '.join(f'{o} {outcomes.count(o)}' for o in sorted(set(outcomes)))})")

        (tmp / "fixed.toml").write_text(SEQUELIZE_RUN.format(code=SEQUELIZE, folder="recommended"))
        record(tmp / "fixed.toml", tmp / "fixed.log")
        convert(tmp / "fixed.log", SEQUELIZE, "recommended/index.handler", "nodejs20.x", tmp / "fixed_replay.toml",
                "--with", str(tmp / "with.toml"))
        replays = run_scenario(sc.load(tmp / "fixed_replay.toml"), runs=args.runs)
        print(f"recommended configuration: replayed {args.runs} times: no failure on "
              f"{sum(r.reproduced for r in replays)}/{args.runs}")
    print(f"load average: {' '.join(f'{load:.2f}' for load in os.getloadavg())}")


if __name__ == "__main__":
    main_()

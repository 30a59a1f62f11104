"""The virtual-time proof cases: each catalog case's scenario in real time with short settings beside the same case
in virtual time with production settings, with what each run ended in and how much wall time it took.

    .venv/bin/python benchmarks/virtual_proof.py              # 3 runs of each scenario
    .venv/bin/python benchmarks/virtual_proof.py --runs 10 --only pg_
    .venv/bin/python benchmarks/virtual_proof.py --json

Each scenario is replayed by ``lambda-freeze repro --json`` in a process of its own; a run's wall time is the sum of
its steps' durations (the cold start and INIT of the first invocation, the freeze, the next invocation, the checks),
which leaves out the per-run setup (a database role, the proxy). The real-time and the virtual scenario of a case
run one after the other, round by round, so the machine's load hits both alike.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
SCENARIOS = ROOT / "scenarios"
LAMBDA_FREEZE = Path(sys.executable).parent / "lambda-freeze"

# (case, real-time scenario, virtual scenario): broken, then fixed.
CASES = [
    ("asyncpg pool on a thread", "python/asyncpg_thread_loop_broken", "python/asyncpg_thread_loop_virtual_broken"),
    ("  fixed", "python/asyncpg_thread_loop_fixed", "python/asyncpg_thread_loop_virtual_fixed"),
    ("asyncpg behind a NAT", "python/nat_idle_drop_broken", "python/nat_idle_drop_virtual_broken"),
    ("  fixed", "python/nat_idle_drop_fixed", "python/nat_idle_drop_virtual_fixed"),
    ("Sequelize counter", "node/sequelize_counter", "node/sequelize_counter_virtual"),
    ("  fixed", "node/sequelize_counter_fixed", "node/sequelize_counter_virtual_fixed"),
    ("Sequelize stale pool (a race)", "node/sequelize_stale_pool_fin", "node/sequelize_stale_pool_virtual"),
    ("  recommended (*)", "node/sequelize_recommended", "node/sequelize_stale_pool_virtual_fixed"),
    ("pg pool, #2718", "node/pg_idle_pool_broken", "node/pg_idle_pool_virtual_broken"),
    ("  fixed", "node/pg_idle_pool_fixed", "node/pg_idle_pool_virtual_fixed"),
    ("pg Client behind a NAT", "node/pg_nat_idle_drop_broken", "node/pg_nat_idle_drop_virtual_broken"),
    ("  fixed", "node/pg_nat_idle_drop_fixed", "node/pg_nat_idle_drop_virtual_fixed"),
]


def replay(name: str, runs: int) -> dict[str, Any]:
    """One scenario, ``runs`` times: the last invocation's outcomes and each run's wall time."""
    path = SCENARIOS / f"{name}.toml"
    done = subprocess.run(
        [str(LAMBDA_FREEZE), "repro", str(path), "--runs", str(runs), "--json"],
        capture_output=True,
        text=True,
        check=False,
        cwd=ROOT,
    )
    if not done.stdout.strip():
        raise SystemExit(f"{name}: repro printed nothing (exit {done.returncode}):\n{done.stderr}")
    report = json.loads(done.stdout)
    walls = [sum(step["duration_ms"] for step in result["steps"]) / 1000 for result in report["results"]]
    invokes = [step for step in report["steps"] if step["action"] == "invoke"]
    return {
        "scenario": name,
        "passed": report["passed"],
        "reproduced": report["reproduced"],
        "runs": report["runs"],
        "outcome": invokes[-1]["outcomes"] if invokes else {},
        "wall_s": walls,
    }


def _outcome(result: dict[str, Any]) -> str:
    return ", ".join(f"{what} {n}/{result['runs']}" for what, n in result["outcome"].items())


def _wall(result: dict[str, Any]) -> str:
    walls = result["wall_s"]
    return f"{statistics.median(walls):5.2f} / {max(walls):5.2f} s"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--only", default="", help="only the cases whose scenario names contain this")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    rows = []
    for case, real, virtual in CASES:
        if args.only not in real and args.only not in virtual:
            continue
        rows.append((case, replay(real, args.runs), replay(virtual, args.runs)))
    if args.json:
        print(json.dumps([{"case": c, "real_time": r, "virtual": v} for c, r, v in rows], indent=2))
        return 0
    print(f"{'case':<30} {'real time: outcome of the last invoke':<44} {'wall p50/max':>15}   "
          f"{'virtual: outcome of the last invoke':<44} {'wall p50/max':>15}")
    for case, real, virtual in rows:
        print(f"{case:<30} {_outcome(real):<44} {_wall(real):>15}   {_outcome(virtual):<44} {_wall(virtual):>15}")
    if any(case.endswith("(*)") for case, _, _ in rows):
        print("(*) the real-time scenario of the recommended configuration runs it through every fault, not one freeze")
    failed = [r["scenario"] for _, *pair in rows for r in pair if not r["passed"]]
    if failed:
        print("expectations that did not hold: " + ", ".join(failed))
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Mutation testing of the engine's core with cosmic-ray: ``make mutation`` (slow, so not part of CI).

Each group below names the modules it mutates and the tests that should kill their mutants. The run happens in a
copy of the work tree (the committed and uncommitted files git knows of), so the tree stays usable while it runs
and a run that is killed half-way leaves no mutant behind. The score of each module is printed at the end, and the
survivors that ``tests/mutation/equivalents.md`` does not list (with their diffs) are written to
``mutation-survivors.txt`` in the work tree: kill each with a test, or list it there with the reason it cannot be.

    python tests/mutation/run.py                    # every group
    python tests/mutation/run.py lifecycle toxics   # some of them
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

# group: (modules to mutate, tests that cover them). The tests are the fast ones that drive each module for real;
# every group runs its tests with -x, so a mutant costs the time up to the first failure.
GROUPS: dict[str, tuple[list[str], list[str]]] = {
    "lifecycle": (["emulator/engine/lifecycle.py"], ["tests/test_lifecycle.py", "tests/test_regressions_lifecycle.py"]),
    "toxics": (["emulator/proxy/toxics"], ["tests/test_proxy.py", "tests/test_regressions_toxics.py"]),
    "invocation": (
        ["emulator/engine/invocation.py"],
        # Fastest first: invocation.py's parts alone, the stream (whose unit tests end the file), then the rest.
        ["tests/test_invocation.py", "tests/test_streaming.py", "tests/test_invoke_api.py",
         "tests/test_python_runtime.py", "tests/test_regressions_timing.py"],
    ),
    "async_invoke": (
        ["emulator/sources/async_invoke.py"],
        ["tests/test_regressions_async.py", "tests/test_async.py", "tests/test_regressions_timing.py"],
    ),
    "pool": (
        ["emulator/engine/pool.py"],
        # Fastest first; of the timing tests, the two that time the pool (its idle timer, its capacity_freed wake-up).
        ["tests/test_invoke_api.py", "tests/test_regressions_start.py", "tests/test_regressions_pool.py",
         # INIT that fails, retried inside the invocation by a new environment (on_init_failed)
         "tests/test_misbehaving.py::test_exit_during_init_is_exit_error",
         "tests/test_misbehaving.py::test_exit_during_init_once_is_retried_inside_the_invocation",
         "tests/test_python_runtime.py::test_import_error",
         "tests/test_python_runtime.py::test_slow_init_is_retried_inside_the_invocation",
         "tests/test_pool.py",
         "tests/test_standby.py", "tests/test_reload.py",
         "tests/test_regressions_timing.py::test_an_idle_environment_lives_its_idle_timeout",
         "tests/test_regressions_timing.py::test_a_throttled_queue_waits_without_burning_cpu"],
    ),
    # The smaller parts of the environment alone (the slot and the runtime's answers, the deadline, the freeze
    # control, the bound owner): their unit tests first, then the tests that drive them through real runtimes.
    "environment_parts": (
        ["emulator/engine/slot.py", "emulator/engine/deadline.py", "emulator/engine/freeze.py",
         "emulator/engine/owner.py"],
        ["tests/test_environment_parts.py", "tests/test_invoke_api.py", "tests/test_regressions_start.py",
         "tests/test_streaming.py", "tests/test_python_runtime.py", "tests/test_regressions_pool.py",
         "tests/test_misbehaving.py", "tests/test_pool.py", "tests/test_freezing.py"],
    ),
    "freezer": (
        ["emulator/engine/freezer", "emulator/engine/cgroupfs.py", "emulator/engine/memory.py"],
        ["tests/test_memory.py", "tests/test_regressions_freezer.py", "tests/test_regressions_memory.py",
         "tests/test_freezing.py"],
    ),
    "environment": (
        [
            "emulator/engine/environment.py",
            "emulator/engine/slot.py",
            "emulator/engine/freeze.py",
            "emulator/engine/processes.py",
            "emulator/engine/deadline.py",
            "emulator/engine/reports.py",
            "emulator/engine/endings.py",
            "emulator/engine/shutdown.py",
            "emulator/engine/extension_side.py",
            "emulator/engine/runtime_side.py",
            "emulator/engine/owner.py",
        ],
        [
            "tests/test_lifecycle.py",
            "tests/test_python_runtime.py",
            "tests/test_misbehaving.py",
            "tests/test_extensions.py",
            "tests/test_freezing.py",
            "tests/test_pool.py",
            "tests/test_regressions_timing.py",
            "tests/test_regressions_memory.py",
            "tests/test_regressions_freezer.py",
            "tests/test_regressions_start.py",
        ],
    ),
}

# cosmic-ray replaces each binary operator by every other one. The plausible slips are kept (+ - * / into one
# another); the exotic ones (a + turned into a ** or a >>) add run time and almost never ask for a test the plausible
# ones do not. A `|` is not mutated: nearly all of them are `X | None` in annotations, strings here (from
# __future__ import annotations) whose mutants could never be killed.
EXCLUDED_OPERATORS = [
    r"core/ReplaceBinaryOperator_\w+_(Pow|Mod|FloorDiv|LShift|RShift|BitXor)$",
    r"core/ReplaceBinaryOperator_(Pow|Mod|FloorDiv|LShift|RShift|BitXor)_",
    r"core/ReplaceBinaryOperator_BitOr_\w+$",
    r"core/ReplaceBinaryOperator_(Add|Sub|Mul|Div)_(BitOr|BitAnd)$",
]


def copy_tree(into: Path) -> None:
    """The files git knows of (committed or not, ignored ones left out), as they are on disk."""
    listed = subprocess.run(
        ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        cwd=ROOT, check=True, capture_output=True,
    ).stdout.decode().split("\0")
    for name in filter(None, listed):
        source = ROOT / name
        if source.is_file():
            target = into / name
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, target)


def run_group(
    name: str, tree: Path, timeout_s: float, tests: list[str] | None, again: Path | None = None, jobs: int = 1
) -> list[tuple[dict, dict | None]]:
    modules, default_tests = GROUPS[name]
    tests = [t for t in tests or default_tests if (tree / t.split("::")[0]).exists()]  # a file, or a test in it
    # `python -m pytest` in the copy puts the copy first on sys.path: the mutated modules are the ones imported.
    command = f"{sys.executable} -m pytest -x -q -p no:cacheprovider --timeout 120 {' '.join(tests)}"
    config = tree / f"mutation-{name}.toml"
    config.write_text(
        "[cosmic-ray]\n"
        f"module-path = {json.dumps(modules)}\n"
        "excluded-modules = []\n"
        f"timeout = {timeout_s}\n"
        f"test-command = {json.dumps(command)}\n"
        "[cosmic-ray.distributor]\n"
        'name = "local"\n'
        "[cosmic-ray.filters.operators-filter]\n"
        f"exclude-operators = {json.dumps(EXCLUDED_OPERATORS)}\n"
    )
    session = tree / f"mutation-{name}.sqlite"
    cosmic_ray = [str(Path(sys.executable).parent / "cosmic-ray")]
    if again is None:
        subprocess.run([*cosmic_ray, "init", str(config), str(session)], cwd=tree, check=True)
        subprocess.run([str(Path(sys.executable).parent / "cr-filter-operators"), str(session), str(config)],
                       cwd=tree, check=True)
    else:
        # An earlier session of this group: its survivors (and the mutants it did not run) are run again; the mutants
        # it killed stay killed, which holds while tests are only added. The survivors equivalents.md lists stay as
        # they are: no test can kill them, and each would cost a whole run of the tests.
        shutil.copy(again, session)
        listed = equivalents()
        with sqlite3.connect(session) as db:
            survivors = db.execute(
                "SELECT r.job_id, s.module_path, s.start_pos_row, s.operator_name FROM work_results r"
                " JOIN mutation_specs s ON s.job_id = r.job_id WHERE upper(r.test_outcome) = 'SURVIVED'"
            ).fetchall()
            db.executemany(
                "DELETE FROM work_results WHERE job_id = ?",
                [(job,) for job, module, line, operator in survivors if f"{module}:{line} {operator}" not in listed],
            )
    started = time.monotonic()
    # CI=true: a prerequisite that a mutant breaks (a freezer backend that no longer starts) fails the tests instead
    # of skipping them, so that mutant is killed.
    env = {**os.environ, "CI": "true"}
    baseline = subprocess.run([*cosmic_ray, "baseline", str(config)], cwd=tree, env=env)
    if baseline.returncode != 0:
        sys.exit(f"{name}: the tests fail without any mutation; fix them first ({command})")
    if jobs > 1:
        execute_in_parallel(tree, config, session, jobs, env)
    else:
        subprocess.run([*cosmic_ray, "exec", str(config), str(session)], cwd=tree, check=True, env=env)
    print(f"{name}: {time.monotonic() - started:.0f} s", flush=True)
    shutil.copy(session, ROOT / f"mutation-{name}.sqlite")  # kept for --again
    dumped = subprocess.run([*cosmic_ray, "dump", str(session)], cwd=tree, check=True, capture_output=True, text=True)
    return [tuple(json.loads(line)) for line in dumped.stdout.splitlines()]  # type: ignore[misc]


def execute_in_parallel(tree: Path, config: Path, session: Path, jobs: int, env: dict[str, str]) -> None:
    """The session's pending mutants dealt out to ``jobs`` copies of the tree (a mutant is written into the files of
    the tree it runs in), each with its own cosmic-ray, and their outcomes gathered back into ``session``."""
    cosmic_ray = str(Path(sys.executable).parent / "cosmic-ray")
    with sqlite3.connect(session) as db:
        pending = [job for (job,) in db.execute(
            "SELECT job_id FROM work_items WHERE job_id NOT IN (SELECT job_id FROM work_results) ORDER BY job_id"
        )]
    with tempfile.TemporaryDirectory(prefix="lambda-freeze-mutation-jobs-") as tmp:
        workers = []
        for n in range(jobs):
            copy = tree if n == 0 else Path(tmp) / str(n)
            if n:
                shutil.copytree(tree, copy, ignore=shutil.ignore_patterns("*.sqlite"))
            part = Path(tmp) / f"part-{n}.sqlite"
            shutil.copy(session, part)
            others = [(job,) for i, job in enumerate(pending) if i % jobs != n]
            with sqlite3.connect(part) as db:  # this worker's share: the mutants dealt to the others are left out
                db.executemany("DELETE FROM mutation_specs WHERE job_id = ?", others)
                db.executemany("DELETE FROM work_items WHERE job_id = ?", others)
            workers.append((part, subprocess.Popen([cosmic_ray, "exec", str(config.relative_to(tree)), str(part)],
                                                   cwd=copy, env=env)))
        failed = [part.name for part, worker in workers if worker.wait() != 0]
        with sqlite3.connect(session) as db:
            for part, _ in workers:
                db.execute("ATTACH DATABASE ? AS part", (str(part),))
                db.execute("INSERT OR REPLACE INTO work_results SELECT * FROM part.work_results")
                db.commit()
                db.execute("DETACH DATABASE part")
        if failed:
            sys.exit(f"cosmic-ray exec failed in {', '.join(failed)}")


def equivalents() -> set[str]:
    """The mutants listed in equivalents.md, as ``module:line operator`` (the first code span of each list item)."""
    text = (Path(__file__).parent / "equivalents.md").read_text()
    return set(re.findall(r"^- `([^`]+)`", text, re.M))


def report(results: list[tuple[dict, dict | None]]) -> list[str]:
    """Print the score per module (raw, and without the listed equivalent mutants); return the other survivors."""
    counts: dict[str, dict[str, int]] = defaultdict(lambda: defaultdict(int))
    listed = equivalents()
    survivors = []
    excluded = re.compile("|".join(EXCLUDED_OPERATORS))
    for item, result in results:
        module = item["mutations"][0]["module_path"]
        if excluded.match(item["mutations"][0]["operator_name"]):  # skipped, or run by a session made without them
            continue
        outcome = (result["test_outcome"] or result["worker_outcome"]) if result else "pending"
        counts[module][outcome] += 1
        if outcome == "survived":
            mutation = item["mutations"][0]
            key = f"{module}:{mutation['start_pos'][0]} {mutation['operator_name']}"
            if key in listed:
                counts[module]["equivalent"] += 1
            else:
                survivors.append(f"{key}\n{result['diff'] if result else ''}")
    header = ("module", "mutants", "killed", "survived", "(equivalent)", "score", "w/o eq.")
    print("{:42} {:>7} {:>6} {:>8} {:>12} {:>6} {:>7}".format(*header))
    for module in sorted(counts):
        c = counts[module]
        total = c["killed"] + c["survived"]
        score = f"{100 * c['killed'] / total:.1f}%" if total else "-"
        real = total - c["equivalent"]
        without = f"{100 * c['killed'] / real:.1f}%" if real else "-"
        extra = "".join(f"  ({n} {k})" for k, n in c.items() if k not in ("killed", "survived", "equivalent"))
        row = f"{module:42} {total:7} {c['killed']:6} {c['survived']:8} {c['equivalent']:12} {score:>6} {without:>7}"
        print(row + extra)
    return survivors


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("groups", nargs="*", help=f"default: every group ({', '.join(GROUPS)})")
    parser.add_argument("--timeout", type=float, default=300.0, help="seconds one mutant's tests may take")
    parser.add_argument("--tests", nargs="+", help="these tests instead of the group's (e.g. to score an older suite)")
    parser.add_argument(
        "--jobs", type=int, default=1, help="mutants run at the same time, each in its own copy of the tree"
    )
    parser.add_argument(
        "--again", type=Path, help="an earlier session (.sqlite) of the one group named: run only its survivors again"
    )
    args = parser.parse_args()
    unknown = set(args.groups) - set(GROUPS)
    if unknown:
        parser.error(f"unknown group(s) {', '.join(sorted(unknown))}: choose among {', '.join(GROUPS)}")
    if args.again and len(args.groups) != 1:
        parser.error("--again takes the session of one group: name that group alone")
    results: list[tuple[dict, dict | None]] = []
    with tempfile.TemporaryDirectory(prefix="lambda-freeze-mutation-") as tmp:
        tree = Path(tmp)
        copy_tree(tree)
        for name in args.groups or list(GROUPS):
            results.extend(run_group(name, tree, args.timeout, args.tests, args.again, args.jobs))
    survivors = report(results)
    (ROOT / "mutation-survivors.txt").write_text("\n".join(survivors))
    print(f"{len(survivors)} survivors written to mutation-survivors.txt")


if __name__ == "__main__":
    main()

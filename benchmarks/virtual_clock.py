"""The virtual clock's cost: nanoseconds per clock call in a runtime with the preload and without, and the warm
invoke p50 of a function with virtual time on and off.

    .venv/bin/python benchmarks/virtual_clock.py                 # 2 M clock calls per runtime, 500 invokes per mode
    .venv/bin/python benchmarks/virtual_clock.py --quick         # smoke run

Clock calls: ``clock_gettime(CLOCK_MONOTONIC)`` in a C loop (built with ``cc``: the call alone), then
``time.clock_gettime_ns`` in a Python loop and ``process.hrtime.bigint()`` in a Node loop, each in a fresh process
with the preload (offset +900 s) and without it. Modes alternate round by round so that the machine's load hits
both alike.
Warm invokes: the trivial handler through the pytest harness (in-process emulator thread), one at a time.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from emulator.engine.clock import VirtualClock
from emulator.harness import LambdaFreeze

TRIVIAL = Path(__file__).parent / "functions/trivial"
PY_LOOP = """
import time, sys
n = int(sys.argv[1]); f = time.clock_gettime_ns; m = time.CLOCK_MONOTONIC
t = time.perf_counter_ns()
for _ in range(n): f(m)
print((time.perf_counter_ns() - t) / n)
"""
NODE_LOOP = """
const n = Number(process.argv[1]); const t = process.hrtime.bigint();
for (let i = 0; i < n; i++) process.hrtime.bigint();
console.log(Number(process.hrtime.bigint() - t) / n);
"""
C_LOOP = r"""
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
int main(int argc, char **argv) {
  long n = atol(argv[1]); struct timespec ts, a, b; long long sink = 0;
  clock_gettime(CLOCK_MONOTONIC, &a);
  for (long i = 0; i < n; i++) { clock_gettime(CLOCK_MONOTONIC, &ts); sink += ts.tv_nsec; }
  clock_gettime(CLOCK_MONOTONIC, &b);
  printf("%f\n", ((b.tv_sec - a.tv_sec) * 1e9 + (b.tv_nsec - a.tv_nsec)) / n + (sink == 42 ? 1e-9 : 0));
  return 0;
}
"""


def c_loop(directory: Path) -> list[str] | None:
    compiler = shutil.which("cc")
    if compiler is None:
        return None
    (directory / "loop.c").write_text(C_LOOP)
    subprocess.run([compiler, "-O2", "-o", str(directory / "loop"), str(directory / "loop.c")], check=True)
    return [str(directory / "loop")]


def per_call_ns(argv: list[str], env: dict[str, str]) -> float:
    out = subprocess.run(argv, env=env, capture_output=True, text=True, check=True).stdout
    return float(out.strip())


def clock_calls(calls: int, rounds: int, directory: Path) -> None:
    clock = VirtualClock("bench")
    clock.advance(900)
    on = {**os.environ, **clock.environment()}
    off = dict(os.environ)
    runtimes: dict[str, list[str]] = {}
    c = c_loop(directory)
    if c is not None:
        runtimes["c"] = [*c, str(calls)]
    runtimes["python"] = [sys.executable, "-c", PY_LOOP, str(calls)]
    node = shutil.which("node")
    if node:
        runtimes["node"] = [node, "-e", NODE_LOOP, str(calls)]
    for name, argv in runtimes.items():
        samples: dict[str, list[float]] = {"off": [], "on": []}
        for _ in range(rounds):
            samples["off"].append(per_call_ns(argv, off))
            samples["on"].append(per_call_ns(argv, on))
        off_ns, on_ns = statistics.median(samples["off"]), statistics.median(samples["on"])
        print(f"{name:7s} clock call: {off_ns:7.1f} ns real, {on_ns:7.1f} ns virtual, +{on_ns - off_ns:.1f} ns")
    clock.close()


def warm_p50(invokes: int, rounds: int) -> None:
    lf = LambdaFreeze()
    try:
        fns = {
            "off": lf.function(TRIVIAL, "app.handler"),
            "on": lf.function(TRIVIAL, "app.handler", virtual_time=True),
        }
        for fn in fns.values():
            fn.invoke({})
        times: dict[str, list[float]] = {"off": [], "on": []}
        per_round = max(1, invokes // rounds)
        for _ in range(rounds):
            for mode, fn in fns.items():
                for _ in range(per_round):
                    started = time.perf_counter()
                    fn.invoke({})
                    times[mode].append((time.perf_counter() - started) * 1000)
        for mode, values in times.items():
            values.sort()
            p50, p90 = statistics.median(values), values[int(len(values) * 0.9)]
            print(f"warm invoke, virtual time {mode:3s}: p50 {p50:.3f} ms, p90 {p90:.3f} ms ({len(values)} invokes)")
    finally:
        lf.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args()
    print(f"load average: {os.getloadavg()}")
    with tempfile.TemporaryDirectory() as directory:
        clock_calls(200_000 if args.quick else 2_000_000, 3 if args.quick else 5, Path(directory))
        warm_p50(100 if args.quick else 500, 5)


if __name__ == "__main__":
    main()

"""What Lambda's paths cost a cold start: the same function, with its code at /var/task and two layers overlaid on
/opt (a private mount namespace per runtime) and at its real paths (``lambda_paths = false``), side by side.

    .venv/bin/python benchmarks/lambda_paths_cost.py [--rounds 20] [--runtime python3.11|nodejs20.x]

Each round retires both functions' environments and invokes each once, in alternating order, so that both meet the
same load; the time of that cold invocation is measured by the caller. Prints the medians, their difference and the
load average. Where the kernel allows no mount namespace, both run at their real paths, and the script says so.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import boto3

from emulator import FunctionConfig, ServerConfig
from emulator.engine import lambda_paths
from emulator.server import Emulator
from emulator.testing import CollectingSink, EmulatorThread

CODE = {
    "python3.11": ("app.py", "app.handler", "def handler(event, context):\n    return 1\n"),
    "nodejs20.x": ("index.js", "index.handler", "exports.handler = async () => 1;\n"),
}
NAMES = {True: "mounted", False: "real"}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=20)
    parser.add_argument("--runtime", default="python3.11", choices=sorted(CODE))
    args = parser.parse_args()
    if not lambda_paths.available():
        print("no private mount namespace here: both functions run at their real paths")
    filename, handler, source = CODE[args.runtime]
    with tempfile.TemporaryDirectory() as folder:
        code, layers = Path(folder, "code"), (Path(folder, "a"), Path(folder, "b"))
        for part in (code, *layers):
            (part / "python").mkdir(parents=True)
        (code / filename).write_text(source)
        functions = tuple(FunctionConfig(NAMES[on], code, handler, runtime=args.runtime, layers=layers,
                                         lambda_paths=on) for on in NAMES)
        emu = EmulatorThread(ServerConfig(port=0, functions=functions), sink=CollectingSink()).start()
        client = boto3.client(
            "lambda", endpoint_url=emu.url, region_name="us-east-1", aws_access_key_id="x", aws_secret_access_key="x"
        )

        async def retire(emulator: Emulator) -> None:
            for name in NAMES.values():
                emulator.functions[name].retire_all("benchmark")

        cold: dict[str, list[float]] = {name: [] for name in NAMES.values()}
        try:
            for name in NAMES.values():  # the runtime's files in the page cache before anything is timed
                client.invoke(FunctionName=name, Payload=b"{}")
            for round_ in range(args.rounds):
                emu.wait_for(lambda e: all(env.idle for f in e.functions.values() for env in f.environments.values()))
                emu.call(retire)
                emu.wait_for(lambda e: not any(f.environments for f in e.functions.values()))
                order = list(NAMES.values()) if round_ % 2 == 0 else list(reversed(NAMES.values()))
                for name in order:
                    started = time.perf_counter()
                    answer = client.invoke(FunctionName=name, Payload=b"{}")
                    cold[name].append(time.perf_counter() - started)
                    assert "FunctionError" not in answer, answer["Payload"].read()
        finally:
            emu.stop()
    medians = {name: statistics.median(times) * 1000 for name, times in cold.items()}
    print(f"{args.runtime}, {args.rounds} rounds, two layers")
    print(f"cold start at /var/task and /opt (median): {medians['mounted']:8.1f} ms")
    print(f"cold start at the real paths (median):     {medians['real']:8.1f} ms")
    print(f"difference: {medians['mounted'] - medians['real']:+.1f} ms")
    print("load average: " + " ".join(f"{x:.2f}" for x in os.getloadavg()))


if __name__ == "__main__":
    main()

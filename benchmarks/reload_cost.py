"""Hot reload's cost: from a saved file to the first answer of the new code, against a plain cold start.

    .venv/bin/python benchmarks/reload_cost.py [--rounds 10] [--runtime python3.11|nodejs20.x]

Each round: the function is warm (frozen), its file is rewritten, then it is invoked at once and again until it
answers with the new code; the time from the write to that answer is the reload cost. A plain cold start is the
first invocation after its environments were retired by hand, with no file change (the same cold start, without
the watcher's part). Prints the medians and their ratio (the target: below 2).
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import boto3

from emulator import FunctionConfig, ServerConfig
from emulator.server import Emulator
from emulator.testing import CollectingSink, EmulatorThread

CODE = {
    "python3.11": ("app.py", "app.handler", "def handler(event, context):\n    return {{'version': {v}}}\n"),
    "nodejs20.x": ("index.js", "index.handler", "exports.handler = async () => ({{ version: {v} }});\n"),
}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=10)
    parser.add_argument("--runtime", default="python3.11", choices=sorted(CODE))
    args = parser.parse_args()
    filename, handler, template = CODE[args.runtime]
    with tempfile.TemporaryDirectory() as folder:
        code = Path(folder)
        (code / filename).write_text(template.format(v=0))
        config = FunctionConfig("fn", code, handler, runtime=args.runtime, timeout_s=30)
        emu = EmulatorThread(ServerConfig(port=0, functions=(config,)), sink=CollectingSink(), reload=True).start()
        client = boto3.client(
            "lambda", endpoint_url=emu.url, region_name="us-east-1", aws_access_key_id="x", aws_secret_access_key="x"
        )

        def invoke() -> Any:
            return json.loads(client.invoke(FunctionName="fn", Payload=b"{}")["Payload"].read())

        async def watching(emulator: Emulator) -> None:
            assert emulator.watcher is not None
            await emulator.watcher.ready.wait()

        async def retire(emulator: Emulator) -> None:
            emulator.functions["fn"].retire_all("benchmark")

        emu.call(watching)
        invoke()
        cold, reload = [], []
        try:
            for round_ in range(1, args.rounds + 1):
                emu.wait_for(lambda e: all(env.idle for env in e.functions["fn"].environments.values()))
                emu.call(retire)
                emu.wait_for(lambda e: not e.functions["fn"].environments)
                started = time.perf_counter()
                invoke()
                cold.append(time.perf_counter() - started)

                emu.wait_for(lambda e: all(env.idle for env in e.functions["fn"].environments.values()))
                started = time.perf_counter()
                (code / filename).write_text(template.format(v=round_))
                while invoke() != {"version": round_}:  # the old code answers until the watcher has seen the save
                    pass
                reload.append(time.perf_counter() - started)
        finally:
            emu.stop()
    cold_ms, reload_ms = statistics.median(cold) * 1000, statistics.median(reload) * 1000
    print(f"{args.runtime}, {args.rounds} rounds")
    print(f"plain cold start (median):           {cold_ms:8.1f} ms")
    print(f"saved file -> new code answers (median): {reload_ms:8.1f} ms")
    print(f"ratio: {reload_ms / cold_ms:.2f} (target < 2)")


if __name__ == "__main__":
    main()

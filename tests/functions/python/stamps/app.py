"""Notes the monotonic time of every delivery of an event (a line in $STAMP_DIR/<key>), then fails it; an event with
``hold_s`` instead keeps the environment busy that long and succeeds."""

import os
import time
from pathlib import Path


def handler(event, context):
    if "hold_s" in event:
        time.sleep(event["hold_s"])  # wait-ok: keeps the environment busy
        return "held"
    with (Path(os.environ["STAMP_DIR"]) / event["key"]).open("a") as out:
        out.write(f"{time.monotonic()}\n")  # CLOCK_MONOTONIC: one clock for every process of the machine
    raise RuntimeError("fails every time")

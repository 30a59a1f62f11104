"""Notes the monotonic time of every delivery of an event (a line in $STAMP_DIR/<key>), then fails it."""

import os
import time
from pathlib import Path


def handler(event, context):
    with (Path(os.environ["STAMP_DIR"]) / event["key"]).open("a") as out:
        out.write(f"{time.monotonic()}\n")  # CLOCK_MONOTONIC: one clock for every process of the machine
    raise RuntimeError("fails every time")

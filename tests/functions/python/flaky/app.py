"""Fails the first ``fail_times`` deliveries of an event (counted in $COUNTER_DIR/<key>), then succeeds."""

import os
import time
from pathlib import Path


def handler(event, context):
    counter = Path(os.environ["COUNTER_DIR"]) / event["key"]
    attempt = int(counter.read_text()) + 1 if counter.exists() else 1
    counter.write_text(str(attempt))
    print(f"attempt {attempt} of {event['key']} as {context.aws_request_id}")
    if event.get("hold_s"):
        time.sleep(event["hold_s"])  # wait-ok: keeps the environment busy
    if attempt <= event.get("fail_times", 0):
        raise RuntimeError(f"attempt {attempt} fails")
    return {"attempt": attempt}

"""INIT takes INIT_SLEEP_S seconds (module import), then the handler answers at once."""

import os
import time

INIT_RUNS = int(os.environ.get("INIT_RUNS", "0"))
print(f"init starting, sleeping {os.environ['INIT_SLEEP_S']} s", flush=True)
time.sleep(float(os.environ["INIT_SLEEP_S"]))  # wait-ok: the slow INIT under test
print("init done", flush=True)


def handler(event, context):
    return {"ok": True, "pid": os.getpid()}

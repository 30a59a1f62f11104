"""Takes SQS batches and notes, per message, its id, when it was sent and when it was processed (ms since the
epoch), one line each, in a file of this environment's own."""

import os
import time

OUT = open(os.path.join(os.environ["OUT_DIR"], f"{os.getpid()}.txt"), "a")


def handler(event, context):
    now_ms = int(time.time() * 1000)
    OUT.write("".join(f"{r['messageId']} {r['attributes']['SentTimestamp']} {now_ms}\n" for r in event["Records"]))
    OUT.flush()
    return {}

"""An SQS consumer whose batches take most of the function timeout: served with reserved concurrency 1 and a queue
whose visibility timeout equals the function timeout, batches that wait for the one environment come back into
the queue while they are still being processed, and are processed twice (broken.toml); with the visibility
timeout AWS advises, six times the function timeout, each message is processed once (fixed.toml)."""

import json
import os
import pathlib
import time

PROCESSED = pathlib.Path(os.environ.get("PROCESSED_DIR", "/tmp/sqs-visibility"))
WORK_S = float(os.environ.get("WORK_S", "1.2"))


def handler(event, context):
    for record in event["Records"]:
        time.sleep(WORK_S)  # the work this message takes
        with (PROCESSED / str(json.loads(record["body"])["id"])).open("a") as out:
            out.write(context.aws_request_id + "\n")
    return {}

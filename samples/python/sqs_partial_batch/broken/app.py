"""An SQS consumer that fails the whole batch when one message is bad: the batch's good messages come back after
the visibility timeout and are processed again (and, with a redrive policy, end in the dead-letter queue)."""

import json
import os
import pathlib

PROCESSED = pathlib.Path(os.environ.get("PROCESSED_DIR", "/tmp/sqs-processed"))


def process(record):
    body = json.loads(record["body"])
    if body.get("bad"):
        raise ValueError(f"message {body['id']} cannot be processed")
    with (PROCESSED / str(body["id"])).open("a") as out:  # one line per time it was processed
        out.write(record["messageId"] + "\n")


def handler(event, context):
    for record in event["Records"]:
        process(record)
    return {"processed": len(event["Records"])}

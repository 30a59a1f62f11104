"""The same consumer with ReportBatchItemFailures: it names the messages that failed in batchItemFailures, so only
those come back; the good ones are deleted once."""

import json
import os
import pathlib

PROCESSED = pathlib.Path(os.environ.get("PROCESSED_DIR", "/tmp/sqs-processed"))


def process(record):
    body = json.loads(record["body"])
    if body.get("bad"):
        raise ValueError(f"message {body['id']} cannot be processed")
    with (PROCESSED / str(body["id"])).open("a") as out:
        out.write(record["messageId"] + "\n")


def handler(event, context):
    failures = []
    for record in event["Records"]:
        try:
            process(record)
        except ValueError as exc:
            print(f"failed: {exc}")
            failures.append({"itemIdentifier": record["messageId"]})
    return {"batchItemFailures": failures}

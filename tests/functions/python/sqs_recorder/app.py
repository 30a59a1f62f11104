"""Records every event it gets (one JSON file per invocation in RECORD_DIR); a message body can ask it to fail
the batch ({"fail_until_receive": N}: while ApproximateReceiveCount < N), or to take a while ({"sleep_s": S})."""

import json
import os
import pathlib
import time

RECORD_DIR = pathlib.Path(os.environ["RECORD_DIR"])


def handler(event, context):
    (RECORD_DIR / f"{time.time():.6f}-{context.aws_request_id}.json").write_text(json.dumps(event))
    for record in event.get("Records", []):
        body = json.loads(record["body"]) if record["body"].startswith("{") else {}
        time.sleep(body.get("sleep_s", 0))  # wait-ok: a handler that takes this long (the scenario asks it)
        if int(record["attributes"]["ApproximateReceiveCount"]) < body.get("fail_until_receive", 0):
            raise RuntimeError(
                f"message {record['messageId']} fails on receive {record['attributes']['ApproximateReceiveCount']}"
            )
    return {"records": len(event.get("Records", []))}

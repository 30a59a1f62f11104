"""A Python function behind the HTTP front door: the last path segment says what to answer (payload 1.0 or 2.0)."""

import base64
import json
import time

invocations = 0


def handler(event, context):
    global invocations
    invocations += 1
    path = event.get("rawPath") or event.get("path") or "/"
    action = path.rstrip("/").rsplit("/", 1)[-1]
    if action == "inferred":
        return {"hello": "world"}
    if action == "string":
        return "plain"
    if action == "fail":
        raise RuntimeError("the handler failed")
    if action == "malformed":
        return {"no": "statusCode"}
    if action == "cookies":
        return {"statusCode": 201, "cookies": ["a=1; Path=/", "b=2"], "body": "baked"}
    if action == "multi":
        return {
            "statusCode": 200,
            "headers": {"X-Single": "one"},
            "multiValueHeaders": {"Set-Cookie": ["a=1", "b=2"], "X-Multi": ["x", "y"]},
            "body": "multi",
        }
    if action == "binary":
        raw = base64.b64decode(event["body"]) if event.get("isBase64Encoded") else (event.get("body") or "").encode()
        return {
            "statusCode": 200,
            "headers": {"Content-Type": "application/octet-stream"},
            "body": base64.b64encode(raw[::-1]).decode(),
            "isBase64Encoded": True,
        }
    if action == "sleep":
        time.sleep(float((event.get("queryStringParameters") or {}).get("s", "1")))  # wait-ok: the slow handler
    if action == "count":
        return {"statusCode": 200, "body": json.dumps({"invocations": invocations})}
    return {
        "statusCode": 200,
        "headers": {"Content-Type": "application/json", "X-Request-Id": context.aws_request_id},
        "body": json.dumps(event),
    }

"""A Python function that calls an HTTP endpoint from inside its environment (as another runtime would)."""

import http.client
import os
import time


def handler(event, context):
    action = event.get("action")
    if action == "address":
        return os.environ["AWS_LAMBDA_RUNTIME_API"]
    if action == "sleep":
        time.sleep(event["seconds"])  # wait-ok: keeps this environment busy
        return "slept"
    if action == "post":
        host, port = event["address"].rsplit(":", 1)
        connection = http.client.HTTPConnection(host, int(port), timeout=10)
        try:
            connection.request("POST", event["path"], body=b"{}", headers={"Content-Type": "application/json"})
            response = connection.getresponse()
            return {"status": response.status, "body": response.read().decode()}
        except OSError as exc:
            return {"status": None, "body": repr(exc)}
        finally:
            connection.close()
    return event

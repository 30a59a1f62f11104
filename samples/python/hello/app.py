"""The smallest function: greets, and counts its warm invocations in a global (state that survives a freeze)."""

import os

invocations = 0


def handler(event, context):
    global invocations
    invocations += 1
    name = event.get("name", "world") if isinstance(event, dict) else "world"
    print(f"hello {name} from {context.aws_request_id} (invocation {invocations} of pid {os.getpid()})")
    return {"message": f"hello {name}", "warm_invocations": invocations}

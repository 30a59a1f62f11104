"""The fuzz tests' function: echoes its event, and on request holds its invocation open until the test says.

{"__fuzz_hold": PORT}  connects to 127.0.0.1:PORT, sends a line "<request id> <AWS_LAMBDA_RUNTIME_API>", and returns
                       once the test closes that connection: the test knows the invocation is in flight, its request
                       id and its environment's Runtime API endpoint.
{"__fuzz_env": true}   returns its process id and the runtime's environment variables.
"""

import os
import socket


def handler(event, context):
    if isinstance(event, dict) and isinstance(event.get("__fuzz_hold"), int):
        with socket.create_connection(("127.0.0.1", event["__fuzz_hold"]), timeout=30) as conn:
            conn.sendall(f"{context.aws_request_id} {os.environ['AWS_LAMBDA_RUNTIME_API']}\n".encode())
            conn.recv(1)  # b"" once the test closes the connection
        return {"released": context.aws_request_id}
    if isinstance(event, dict) and event.get("__fuzz_env") is True:
        return {"pid": os.getpid(), "environ": dict(os.environ)}
    return event

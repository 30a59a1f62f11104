"""Opens its one allowed connection to the one-client server during INIT, to reuse it in every invocation.
INIT also runs on environments that are never invoked (a replacement initialised beside the environment it
replaces): the server greets that one's connection with "busy", and once it serves, its invocations fail."""

import os
import socket

host, port = os.environ["SERVER_ADDR"].rsplit(":", 1)
connection = socket.create_connection((host, int(port)), timeout=5)
stream = connection.makefile("rwb")
stream.readline()  # the server's greeting: the connection is open once the server has spoken


def handler(event, context):
    stream.write(b"ping\n")
    stream.flush()
    answer = stream.readline().strip().decode()
    if answer != "pong":
        raise ConnectionError(f"server answered {answer!r} instead of 'pong'")
    return {"answer": answer}

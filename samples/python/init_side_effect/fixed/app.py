"""Connects inside the handler and disconnects before returning: INIT has no side effect on the server, so an
environment initialised beside another (and perhaps never invoked) takes nothing from it."""

import os
import socket

host, port = os.environ["SERVER_ADDR"].rsplit(":", 1)


def handler(event, context):
    with socket.create_connection((host, int(port)), timeout=5) as connection:
        stream = connection.makefile("rwb")
        stream.readline()  # the server's greeting: the connection is open once the server has spoken
        stream.write(b"ping\n")
        stream.flush()
        answer = stream.readline().strip().decode()
    if answer != "pong":
        raise ConnectionError(f"server answered {answer!r} instead of 'pong'")
    return {"answer": answer}

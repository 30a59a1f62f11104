"""A Python ASGI app as users deploy one behind API Gateway and function URLs: a plain ASGI callable wrapped by
Mangum. ``/reverse`` answers the request body reversed; any other path its path, query, cookie header and how many
such requests this process has served, and sets two cookies."""

import json
from urllib.parse import parse_qs

from mangum import Mangum

requests = 0


async def app(scope, receive, send):
    global requests
    assert scope["type"] == "http"
    body = b""
    while True:
        message = await receive()
        body += message.get("body", b"")
        if not message.get("more_body"):
            break
    path = scope["path"]
    headers = {k.decode(): v.decode() for k, v in scope["headers"]}
    if path == "/reverse":
        status, out, kind = 200, body[::-1], b"application/octet-stream"
        extra = []
    else:
        requests += 1
        query = {k: v for k, v in parse_qs(scope["query_string"].decode(), keep_blank_values=True).items()}
        out = json.dumps({"path": path, "query": query, "cookie": headers.get("cookie"), "requests": requests}).encode()
        status, kind = 200, b"application/json"
        extra = [(b"set-cookie", b"seen=" + path.rsplit("/", 1)[-1].encode()), (b"set-cookie", b"asgi=1")]
    await send({"type": "http.response.start", "status": status, "headers": [(b"content-type", kind), *extra]})
    await send({"type": "http.response.body", "body": out})


handler = Mangum(app, lifespan="off", text_mime_types=["application/json"])

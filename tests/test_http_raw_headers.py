"""The HTTP layer's ``raw_headers`` servers (the front door's): each request's header fields one by one and the
client's address, over real loopback connections; the other servers keep neither."""

from __future__ import annotations

import asyncio
import socket

import pytest

from runtime_api.http import HttpServer, Request, Response

CLIENT_IP = "127.0.0.2"  # all of 127/8 is loopback on Linux: a peer of 127.0.0.2 comes from the socket alone

PIPELINED = (
    b"GET /one HTTP/1.1\r\nHost: x\r\nX-Dup: a\r\nCookie: s=1\r\nx-dup:  b, c \r\nCookie: t=2\r\n\r\n"
    b"POST /two HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nX-Dup: z\r\n\r\n"
    b"3\r\nabc\r\n0\r\nX-Trailer: late\r\n\r\n"
    b"GET /three HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
)


async def exchange(raw_headers: bool) -> list[Request]:
    """Three pipelined requests from CLIENT_IP to a server; the requests its handler got, bodies read."""
    seen: list[Request] = []

    async def handler(request: Request) -> Response:
        await request.read()
        seen.append(request)
        return Response(200, b"ok")

    server = HttpServer(
        handler, max_body=1024, error_response=lambda s, m: Response(s, m.encode()), raw_headers=raw_headers
    )
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    await server.listen(sock)
    try:
        reader, writer = await asyncio.open_connection("127.0.0.1", sock.getsockname()[1], local_addr=(CLIENT_IP, 0))
        writer.write(PIPELINED)
        answers = await reader.read()  # the server closes after the third answer (Connection: close)
        writer.close()
        assert answers.count(b"HTTP/1.1 200 OK") == 3
    finally:
        await server.close(grace_s=1.0)
    return seen


@pytest.mark.asyncio
async def test_a_raw_headers_server_keeps_each_field_in_order_and_the_peer() -> None:
    one, two, three = await exchange(raw_headers=True)
    assert one.header_lines == [("host", "x"), ("x-dup", "a"), ("cookie", "s=1"), ("x-dup", "b, c"), ("cookie", "t=2")]
    assert one.headers["x-dup"] == "a, b, c"  # the joined view is unchanged
    # each request's own fields; the trailers of a chunked body are not header fields
    assert two.header_lines == [("host", "x"), ("transfer-encoding", "chunked"), ("x-dup", "z")]
    assert two.trailers == {"x-trailer": "late"}
    assert three.header_lines == [("host", "x"), ("connection", "close")]
    assert {one.peer, two.peer, three.peer} == {CLIENT_IP}


@pytest.mark.asyncio
async def test_other_servers_keep_neither() -> None:
    requests = await exchange(raw_headers=False)
    assert [(r.header_lines, r.peer) for r in requests] == [(None, None)] * 3
    assert requests[0].headers["cookie"] == "s=1, t=2"

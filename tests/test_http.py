"""The HTTP layer both APIs stand on (runtime_api/http/), over real loopback connections.

Framing (bodies, chunked coding, trailers, pipelining) is checked wherever the bytes are split; the rest is what a
client on the other end of a socket sees: keep-alive, 100-continue, limits, malformed input, streamed responses
and a graceful close.
"""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator

import pytest
import pytest_asyncio

from runtime_api.errors import runtime_error
from runtime_api.http import (
    BodyError,
    BodyTooLarge,
    HttpServer,
    MethodNotAllowed,
    NotFound,
    Request,
    Response,
    Router,
    StreamingResponse,
    route_errors,
)

PIPELINE = (
    b"GET /next HTTP/1.1\r\nHost: x\r\n\r\n"
    b"POST /a/echo HTTP/1.1\r\nHost: x\r\nContent-Length: 12\r\n\r\n0\r\nX-Fake: 1\r\n"
    b"POST /b/echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nTrailer: X-Error\r\n\r\n"
    b"3;ext=1\r\nabc\r\n2\r\n\r\n\r\n0\r\nX-Error: boom\r\nX-Other:  two words \r\n\r\n"
    b"POST /c/echo HTTP/1.1\r\nHost: x\r\ntransfer-encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n"
    b"POST /d/echo?q=1&q=2&r= HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
    b"1\r\n\n\r\n0\r\nLambda-Runtime-Function-Error-Type: Late\r\n\r\n"
)


class Served:
    """An HttpServer on an ephemeral loopback port, with the handlers the tests need."""

    def __init__(self, max_body: int = 1024) -> None:
        self.seen: list[tuple[str, bytes, dict[str, str], dict[str, str], dict[str, str]]] = []
        self.release = asyncio.Event()
        self.held = asyncio.Event()
        self.streamed_closed = asyncio.Event()
        router = Router()
        router.add("GET", "/next", self.next)
        router.add("POST", "/{id}/echo", self.echo)
        router.add("POST", "/{id}/stream-in", self.stream_in)
        router.add("POST", "/early", self.early)
        router.add("GET", "/stream-out", self.stream_out)
        router.add("GET", "/hold", self.hold)
        router.add("GET", "/poll", self.poll)
        router.add("GET", "/boom", self.boom)
        self.server = HttpServer(
            route_errors(router, self.render),
            max_body=max_body,
            error_response=lambda status, message: runtime_error(status, "Http", message),
        )

    @staticmethod
    def render(request: Request, exc: Exception) -> Response | None:
        if isinstance(exc, BodyTooLarge):
            return runtime_error(413, "TooLarge", str(exc.size))
        if isinstance(exc, BodyError):
            return runtime_error(400, "Truncated", str(exc))
        if isinstance(exc, NotFound):
            return runtime_error(404, "NotFound", "")
        if isinstance(exc, MethodNotAllowed):
            return runtime_error(405, "MethodNotAllowed", "")
        return None

    async def start(self) -> int:
        sock = socket.socket()
        sock.bind(("127.0.0.1", 0))
        await self.server.listen(sock)
        return sock.getsockname()[1]

    async def next(self, request: Request) -> Response:
        self.seen.append((request.path, b"", {}, dict(request.query), request.params))
        return Response(200, b"event", content_type="application/json")

    async def echo(self, request: Request) -> Response:
        body = await request.read()
        self.seen.append((request.path, body, dict(request.trailers), dict(request.query), request.params))
        return Response(202, body)

    async def stream_in(self, request: Request) -> Response:
        pieces = [piece async for piece in request.stream()]
        summary = f"{len(pieces)} pieces, {sum(map(len, pieces))} bytes, {request.trailers}"
        return Response(202, summary.encode())

    async def early(self, request: Request) -> Response:
        return Response(200, b"answered before reading")

    async def stream_out(self, request: Request) -> StreamingResponse:
        async def body() -> AsyncIterator[bytes]:
            try:
                yield b"first"
                await self.release.wait()
                yield b"second"
            finally:
                self.streamed_closed.set()

        return StreamingResponse(200, {"Content-Type": "text/plain"}, body())

    async def hold(self, request: Request) -> Response:
        self.held.set()
        await self.release.wait()
        return Response(200, b"released")

    async def poll(self, request: Request) -> Response:
        request.cancel_on_disconnect = True
        self.held.set()
        try:
            await self.release.wait()
        except asyncio.CancelledError:
            self.streamed_closed.set()
            raise
        return Response(200, b"released")

    async def boom(self, request: Request) -> Response:
        raise RuntimeError("handler bug")


_writers: list[asyncio.StreamWriter] = []


async def _connect(port: int) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    _writers.append(writer)
    return reader, writer


@pytest_asyncio.fixture(autouse=True)
async def _close_connections() -> AsyncIterator[None]:
    yield
    while _writers:
        writer = _writers.pop()
        writer.close()
        try:
            await writer.wait_closed()
        except ConnectionError:
            pass


async def _response(reader: asyncio.StreamReader) -> tuple[int, dict[str, str], bytes]:
    head = await reader.readuntil(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split()[1])
    headers = {}
    for line in lines[1:]:
        if line:
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
    if "content-length" in headers:
        body = await reader.readexactly(int(headers["content-length"]))
    elif headers.get("transfer-encoding") == "chunked":
        body = b""
        while True:
            size = int((await reader.readuntil(b"\r\n")).strip(), 16)
            chunk = await reader.readexactly(size + 2)
            if size == 0:
                break
            body += chunk[:-2]
    else:
        body = b""
    return status, headers, body


@pytest_asyncio.fixture
async def served() -> AsyncIterator[Served]:
    served = Served()
    yield served
    served.release.set()
    await served.server.close(grace_s=1.0)


@pytest.mark.asyncio
async def test_pipelined_requests_are_answered_in_order_wherever_the_bytes_are_split(served: Served) -> None:
    port = await served.start()
    for split in (1, 7, 40, len(PIPELINE) // 2, len(PIPELINE) - 3):
        served.seen.clear()
        reader, writer = await _connect(port)
        writer.write(PIPELINE[:split])
        await writer.drain()
        first = await _response(reader) if split > 40 else None
        writer.write(PIPELINE[split:])
        statuses = [first[0]] if first else []
        while len(statuses) < 5:
            statuses.append((await _response(reader))[0])
        assert statuses == [200, 202, 202, 202, 202]
        writer.close()
        assert [entry[0] for entry in served.seen] == ["/next", "/a/echo", "/b/echo", "/c/echo", "/d/echo"]
        by_path = {entry[0]: entry for entry in served.seen}
        assert by_path["/a/echo"][1] == b"0\r\nX-Fake: 1"  # a Content-Length body is only a body
        assert by_path["/a/echo"][4] == {"id": "a"}
        assert by_path["/b/echo"][1] == b"abc\r\n"
        assert by_path["/b/echo"][2] == {"x-error": "boom", "x-other": "two words"}
        assert by_path["/c/echo"][2] == {}
        assert by_path["/d/echo"][2] == {"lambda-runtime-function-error-type": "Late"}
        assert by_path["/d/echo"][3] == {"q": "1", "r": ""}


@pytest.mark.asyncio
async def test_a_streamed_request_body_arrives_piece_by_piece_with_its_trailers(served: Served) -> None:
    port = await served.start()
    reader, writer = await _connect(port)
    writer.write(b"POST /x/stream-in HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n")
    for _ in range(3):
        writer.write(b"400\r\n" + b"y" * 1024 + b"\r\n")
        await writer.drain()
    writer.write(b"0\r\nX-Error: late\r\n\r\n")
    status, _, body = await _response(reader)
    assert status == 202
    assert body.endswith(b"3072 bytes, {'x-error': 'late'}")
    writer.close()


@pytest.mark.asyncio
async def test_a_body_that_breaks_off_reaches_the_handler_as_an_error(served: Served) -> None:
    port = await served.start()
    reader, writer = await _connect(port)
    writer.write(b"POST /x/stream-in HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\nZZ\r\n")
    status, headers, body = await _response(reader)
    assert status == 400 and b"Truncated" in body
    assert headers["connection"] == "close"
    assert await reader.read() == b""  # and the connection is closed


@pytest.mark.asyncio
async def test_over_the_limit_a_body_is_refused_and_the_connection_goes_on(served: Served) -> None:
    port = await served.start()
    reader, writer = await _connect(port)
    big = b"z" * 5000
    writer.write(b"POST /x/echo HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n%b" % (len(big), big))
    status, _, body = await _response(reader)
    assert (status, body) == (413, b'{"errorMessage": "5000", "errorType": "TooLarge"}')
    writer.write(b"GET /next HTTP/1.1\r\nHost: x\r\n\r\n")
    assert (await _response(reader))[2] == b"event"
    writer.close()


@pytest.mark.asyncio
async def test_expect_100_continue(served: Served) -> None:
    port = await served.start()
    reader, writer = await _connect(port)
    writer.write(b"POST /x/echo HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\nExpect: 100-continue\r\n\r\n")
    assert await reader.readuntil(b"\r\n\r\n") == b"HTTP/1.1 100 Continue\r\n\r\n"
    writer.write(b"data")
    assert (await _response(reader))[:3:2] == (202, b"data")
    # too large: no 100, a final answer at once, and the connection is closed (the client sends no body)
    writer.write(b"POST /x/echo HTTP/1.1\r\nHost: x\r\nContent-Length: 99999\r\nExpect: 100-continue\r\n\r\n")
    assert (await _response(reader))[0] == 413
    assert await reader.read() == b""


@pytest.mark.asyncio
async def test_an_answer_before_the_body_is_read_drops_the_rest_of_it(served: Served) -> None:
    port = await served.start()
    reader, writer = await _connect(port)
    writer.write(b"POST /early HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\n\r\n01234")
    assert (await _response(reader))[2] == b"answered before reading"
    writer.write(b"56789GET /next HTTP/1.1\r\nHost: x\r\n\r\n")
    assert (await _response(reader))[2] == b"event"
    writer.close()


@pytest.mark.parametrize(
    ("request_bytes", "status"),
    [
        (b"NOT HTTP AT ALL\r\n\r\n", 400),
        (b"GET /next HTTP/1.1\r\nHost: x\r\nContent-Length: nope\r\n\r\n", 400),
        (b"GET /next HTTP/1.1\r\nHost: x\r\nBad Header\r\n\r\n", 400),
        # an upgrade is not taken up: the request is answered as it is, and the connection ends there
        (b"GET /next HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: upgrade\r\n\r\n", 200),
        (b"GET /next HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * 70000 + b"\r\n\r\n", 431),
    ],
)
@pytest.mark.asyncio
async def test_malformed_requests_are_answered_and_the_connection_closes(
    served: Served, request_bytes: bytes, status: int
) -> None:
    port = await served.start()
    reader, writer = await _connect(port)
    writer.write(request_bytes)
    got, headers, _ = await _response(reader)
    assert got == status
    assert headers["connection"] == "close"
    assert await reader.read() == b""


@pytest.mark.asyncio
async def test_routing_errors_and_handler_bugs_are_answered(served: Served) -> None:
    port = await served.start()
    reader, writer = await _connect(port)
    writer.write(b"GET /nowhere HTTP/1.1\r\nHost: x\r\n\r\nPOST /next HTTP/1.1\r\nHost: x\r\n\r\n")
    assert (await _response(reader))[0] == 404
    assert (await _response(reader))[0] == 405
    writer.write(b"GET /boom HTTP/1.1\r\nHost: x\r\n\r\n")
    assert (await _response(reader))[0] == 500
    writer.write(b"GET /next HTTP/1.0\r\nConnection: keep-alive\r\n\r\n")
    status, headers, _ = await _response(reader)
    assert (status, headers["connection"]) == (200, "keep-alive")
    writer.write(b"GET /next HTTP/1.0\r\n\r\n")  # HTTP/1.0 without keep-alive: answered, then closed
    assert (await _response(reader))[2] == b"event"
    assert await reader.read() == b""


@pytest.mark.asyncio
async def test_a_streamed_response_is_written_as_it_comes_and_closed_when_the_caller_leaves(served: Served) -> None:
    port = await served.start()
    reader, writer = await _connect(port)
    writer.write(b"GET /stream-out HTTP/1.1\r\nHost: x\r\n\r\n")
    head = await reader.readuntil(b"\r\n\r\n")
    assert b"Transfer-Encoding: chunked" in head
    assert await reader.readuntil(b"first\r\n") == b"5\r\nfirst\r\n"  # before the body has ended
    writer.close()
    await writer.wait_closed()
    served.release.set()
    await asyncio.wait_for(served.streamed_closed.wait(), 5)  # the generator's finally ran


@pytest.mark.asyncio
async def test_a_long_poll_is_withdrawn_when_its_client_goes_away(served: Served) -> None:
    port = await served.start()
    _, writer = await _connect(port)
    writer.write(b"GET /poll HTTP/1.1\r\nHost: x\r\n\r\n")
    await asyncio.wait_for(served.held.wait(), 5)
    writer.close()
    await asyncio.wait_for(served.streamed_closed.wait(), 5)  # the poll was cancelled
    served.release.set()


@pytest.mark.asyncio
async def test_close_gives_requests_in_flight_their_grace_then_cancels_them() -> None:
    served = Served()
    port = await served.start()
    reader, writer = await _connect(port)
    writer.write(b"GET /hold HTTP/1.1\r\nHost: x\r\n\r\n")
    idle_reader, idle_writer = await _connect(port)
    idle_writer.write(b"GET /next HTTP/1.1\r\nHost: x\r\n\r\n")
    assert (await _response(idle_reader))[2] == b"event"  # answered, and idle since
    await asyncio.wait_for(served.held.wait(), 5)
    closing = asyncio.create_task(served.server.close(grace_s=30))
    assert await asyncio.wait_for(idle_reader.read(), 5) == b""  # an idle connection is closed at once
    served.release.set()
    status, headers, body = await _response(reader)
    assert (status, body, headers["connection"]) == (200, b"released", "close")
    await asyncio.wait_for(closing, 5)
    with pytest.raises(OSError):
        await _connect(port)

    served = Served()
    port = await served.start()
    reader, writer = await _connect(port)
    writer.write(b"GET /hold HTTP/1.1\r\nHost: x\r\n\r\n")
    await asyncio.wait_for(served.held.wait(), 5)
    await served.server.close(grace_s=0.05)  # the handler never ends: cancelled
    assert await reader.read() == b""


def test_the_date_header_is_an_imf_fixdate() -> None:
    from email.utils import formatdate

    from runtime_api.http.wire import http_date

    for epoch_s in (0, 784_111_777, 1_795_000_000, 4_102_444_799):
        assert http_date(epoch_s).decode() == formatdate(epoch_s, usegmt=True)

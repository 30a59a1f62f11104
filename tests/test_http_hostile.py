"""The HTTP layer against hostile and broken clients, over real loopback connections: heads bounded as the bytes
arrive, answers no faster than the client reads them, timeouts, the connection cap, 100-continue in order, and the
RFC 9112 decisions (Host, version, transfer codings, absolute-form targets)."""

from __future__ import annotations

import asyncio
import logging
import resource
import socket
from collections.abc import AsyncIterator, Callable

import pytest
import pytest_asyncio

from runtime_api.errors import runtime_error
from runtime_api.http import (
    MAX_PIPELINED,
    BodyError,
    HttpLimits,
    HttpServer,
    NotFound,
    Request,
    Response,
    Router,
    StreamingResponse,
    route_errors,
)

BIG = b"x" * 10_000  # an answer a client that never reads leaves in the buffers


class Rig:
    """An HttpServer on an ephemeral port, with the limits a test asks for."""

    def __init__(self, limits: HttpLimits) -> None:
        self.answered = 0
        self.first = asyncio.Event()
        self.release = asyncio.Event()
        self.held = asyncio.Event()
        router = Router()
        router.add("GET", "/next", self.next)
        router.add("GET", "/big", self.big)
        router.add("GET", "/hold", self.hold)
        router.add("GET", "/stream", self.stream)
        router.add("POST", "/echo", self.echo)
        self.server = HttpServer(
            route_errors(router, self.render),
            max_body=1 << 20,
            error_response=lambda status, message: runtime_error(status, "Http", message),
            limits=limits,
        )
        self.port = 0

    @staticmethod
    def render(request: Request, exc: Exception) -> Response | None:
        if isinstance(exc, BodyError):
            return runtime_error(400, "Truncated", str(exc))
        if isinstance(exc, NotFound):
            return runtime_error(404, "NotFound", request.path)
        return None

    async def start(self) -> int:
        sock = socket.socket()
        sock.bind(("127.0.0.1", 0))
        await self.server.listen(sock)
        self.port = sock.getsockname()[1]
        return self.port

    async def next(self, request: Request) -> Response:
        return Response(200, b"event " + request.path.encode())

    async def big(self, request: Request) -> Response:
        self.answered += 1
        self.first.set()
        return Response(200, BIG)

    async def hold(self, request: Request) -> Response:
        self.held.set()
        await self.release.wait()
        return Response(200, b"released")

    async def stream(self, request: Request) -> StreamingResponse:
        async def body() -> AsyncIterator[bytes]:
            for _ in range(100_000):
                self.answered += 1
                self.first.set()
                yield BIG

        return StreamingResponse(200, {"Content-Type": "text/plain"}, body())

    async def echo(self, request: Request) -> Response:
        return Response(202, await request.read())


_writers: list[asyncio.StreamWriter] = []


async def _connect(port: int) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    reader, writer = await asyncio.open_connection("127.0.0.1", port, limit=1 << 20)
    _writers.append(writer)
    return reader, writer


async def _response(reader: asyncio.StreamReader) -> tuple[int, dict[str, str], bytes]:
    head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 10)
    lines = head.decode("latin-1").split("\r\n")
    headers = {}
    for line in lines[1:]:
        if line:
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
    body = await reader.readexactly(int(headers.get("content-length", "0")))
    return int(lines[0].split()[1]), headers, body


async def _closed(reader: asyncio.StreamReader) -> bool:
    try:
        return await asyncio.wait_for(reader.read(), 10) == b""
    except ConnectionError:
        return True


async def _until(condition: Callable[[], bool]) -> bool:
    """Whether ``condition`` holds within a few hundred loop turns: the server's side of a close runs a turn or two
    after the client's (in this same loop)."""
    for _ in range(500):
        if condition():
            return True
        await asyncio.sleep(0)  # wait-ok: one loop turn (bounded count), not time
    return condition()


@pytest_asyncio.fixture
async def rig_factory() -> AsyncIterator[Callable[..., Rig]]:
    rigs: list[Rig] = []

    def make(**limits: object) -> Rig:
        rig = Rig(HttpLimits(**limits))  # type: ignore[arg-type]
        rigs.append(rig)
        return rig

    yield make
    while _writers:
        writer = _writers.pop()
        writer.close()
    for rig in rigs:
        rig.release.set()
        await rig.server.close(grace_s=1.0)


# ------------------------------------------------------------------------------------------------- head bounds
@pytest.mark.parametrize(
    ("start", "status"),
    [
        (b"GET /next HTTP/1.1\r\nHost: x\r\nX-Big: ", 431),  # a value that never ends
        (b"GET /next HTTP/1.1\r\nHost: x\r\nX-Big", 431),  # a name that never ends
        (b"GET /next HTTP/1.1\r\nHost: x\r\n" + b"X-Many: 1\r\n" * 10_000, 431),  # small fields, a head too long
        (b"GET /", 414),  # a request target that never ends
        # trailers that never end: the handler reading the body learns that it broke off, and answers 400
        (b"POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n1\r\na\r\n0\r\nX-Trailer: ", 400),
    ],
)
@pytest.mark.asyncio
async def test_a_head_that_never_ends_is_refused_once_past_its_bound(
    rig_factory: Callable[..., Rig], start: bytes, status: int
) -> None:
    rig = rig_factory()
    reader, writer = await _connect(await rig.start())
    writer.write(start)
    sent = len(start)
    answer = asyncio.ensure_future(_response(reader))
    while not answer.done() and sent < 4 * 1024 * 1024:  # before, the server read on without bound
        writer.write(b"a" * 4096)
        sent += 4096
        await asyncio.wait([answer], timeout=0.001)  # lets the server read what was written
    got, headers, _ = await answer
    assert (got, headers["connection"]) == (status, "close")
    assert sent <= 64 * 1024 + 512 * 1024  # refused once past the bound, not when the line ends
    assert await _closed(reader)


@pytest.mark.asyncio
async def test_heads_within_the_bounds_are_served(rig_factory: Callable[..., Rig]) -> None:
    rig = rig_factory()
    reader, writer = await _connect(await rig.start())
    fields = b"".join(b"X-F%d: %s\r\n" % (i, b"v" * 1000) for i in range(60))  # about 61 KB of head
    writer.write(b"GET /next HTTP/1.1\r\nHost: x\r\n" + fields + b"\r\n")
    assert (await _response(reader))[0] == 200
    writer.write(b"GET /next HTTP/1.1\r\nHost: x\r\nX-Line: " + b"v" * 16_000 + b"\r\n\r\n")
    assert (await _response(reader))[0] == 200
    writer.write(b"GET /next HTTP/1.1\r\nHost: x\r\nX-Line: " + b"v" * 16_500 + b"\r\n\r\n")
    assert (await _response(reader))[0] == 431  # one field over its own bound
    assert await _closed(reader)


# ------------------------------------------------------------------------------------------------- flow control
@pytest.mark.asyncio
async def test_answers_a_client_does_not_read_stop_the_reading_of_its_requests(rig_factory: Callable[..., Rig]) -> None:
    rig = rig_factory()
    reader, writer = await _connect(await rig.start())
    count = 3000  # 30 MB of answers, were they all written into memory
    writer.write(b"GET /big HTTP/1.1\r\nHost: x\r\n\r\n" * count)
    await asyncio.wait_for(rig.first.wait(), 10)
    await asyncio.sleep(0.5)  # wait-ok: the time an unbounded server takes to answer everything into its buffers
    (connection,) = rig.server._connections
    assert rig.answered < count // 2, rig.answered  # what the kernel's socket buffers hold, and no more
    assert len(connection._queue) <= MAX_PIPELINED + 1  # type: ignore[attr-defined]  # not a whole read's worth
    assert connection._transport.get_write_buffer_size() <= 64 * 1024 + len(BIG) + 1024  # type: ignore[attr-defined]
    for _ in range(count):  # the client reads at last: every answer comes, in order
        status, _, body = await _response(reader)
        assert (status, body) == (200, BIG)
    assert rig.answered == count


@pytest.mark.asyncio
async def test_a_streamed_answer_is_written_no_faster_than_it_is_read(rig_factory: Callable[..., Rig]) -> None:
    rig = rig_factory()
    _reader, writer = await _connect(await rig.start())
    writer.write(b"GET /stream HTTP/1.1\r\nHost: x\r\n\r\n")
    await asyncio.wait_for(rig.first.wait(), 10)
    await asyncio.sleep(0.5)  # wait-ok: the time an unbounded writer takes to buffer the whole stream
    assert rig.answered < 2000, rig.answered  # 1 GB were it buffered; a few MB of socket buffers at most


# ------------------------------------------------------------------------------------------------- timeouts
@pytest.mark.asyncio
async def test_a_head_must_arrive_within_the_header_timeout_even_a_byte_at_a_time(
    rig_factory: Callable[..., Rig],
) -> None:
    rig = rig_factory(header_timeout_s=0.4, idle_timeout_s=None, body_timeout_s=None)
    reader, writer = await _connect(await rig.start())
    started = asyncio.get_running_loop().time()
    answer = asyncio.ensure_future(_response(reader))
    for byte in b"GET /next HTTP/1.1\r\nHost: x\r\nX-Slow: " + b"s" * 200:  # slowloris: always some progress
        if answer.done():
            break
        writer.write(bytes([byte]))
        await asyncio.wait([answer], timeout=0.05)  # wait-ok: a byte every 50 ms is the attack
    status, headers, _ = await answer
    assert (status, headers["connection"]) == (408, "close")
    assert asyncio.get_running_loop().time() - started < 5
    assert await _closed(reader)


@pytest.mark.asyncio
async def test_idle_and_silent_connections_are_closed(rig_factory: Callable[..., Rig]) -> None:
    rig = rig_factory(header_timeout_s=0.3, idle_timeout_s=0.3, body_timeout_s=0.3)
    port = await rig.start()
    silent_reader, _ = await _connect(port)  # connects, never sends
    reader, writer = await _connect(port)
    writer.write(b"GET /next HTTP/1.1\r\nHost: x\r\n\r\n")
    assert (await _response(reader))[0] == 200
    assert await _closed(reader)  # kept alive, then idle: closed without a word
    assert await _closed(silent_reader)
    body_reader, body_writer = await _connect(port)
    body_writer.write(b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\n\r\n12345")  # half a body
    status, headers, _ = await _response(body_reader)
    assert (status, headers["connection"]) == (400, "close")  # its handler learnt that the body broke off
    assert await _closed(body_reader)
    body_writer.close()  # the server lingers on the write-closed connection until the client closes it too
    assert await _until(lambda: rig.server.connections == 0)


@pytest.mark.asyncio
async def test_a_pipelined_head_is_timed_out_and_a_body_that_keeps_coming_is_not(
    rig_factory: Callable[..., Rig],
) -> None:
    rig = rig_factory(header_timeout_s=0.4, idle_timeout_s=None, body_timeout_s=0.4)
    port = await rig.start()
    reader, writer = await _connect(port)
    writer.write(b"GET /next HTTP/1.1\r\nHost: x\r\n\r\nGET /next HTTP/1.1\r\nHost")  # a second head, cut off
    assert (await _response(reader))[0] == 200
    status, headers, _ = await _response(reader)
    assert (status, headers["connection"]) == (408, "close")
    slow_reader, slow_writer = await _connect(port)
    slow_writer.write(b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 8\r\n\r\n")
    for piece in (b"ab", b"cd", b"ef", b"gh"):  # 0.75 s in all, never 0.4 s without a piece
        await asyncio.sleep(0.25)  # wait-ok: a slow but steady upload is the scenario
        slow_writer.write(piece)
    status, _, body = await _response(slow_reader)
    assert (status, body) == (202, b"abcdefgh")


@pytest.mark.asyncio
async def test_a_request_waiting_for_its_answer_is_never_timed_out(rig_factory: Callable[..., Rig]) -> None:
    rig = rig_factory(header_timeout_s=0.2, idle_timeout_s=0.2, body_timeout_s=0.2)
    reader, writer = await _connect(await rig.start())
    writer.write(b"GET /hold HTTP/1.1\r\nHost: x\r\n\r\n")
    await asyncio.wait_for(rig.held.wait(), 10)
    await asyncio.sleep(1.0)  # wait-ok: five times every timeout, as a long-poll `next` waits while frozen
    rig.release.set()
    status, _, body = await _response(reader)
    assert (status, body) == (200, b"released")


# ------------------------------------------------------------------------------------------------- connection cap
@pytest.mark.asyncio
async def test_beyond_the_connection_cap_a_client_gets_503_and_the_server_recovers(
    rig_factory: Callable[..., Rig], caplog: pytest.LogCaptureFixture
) -> None:
    rig = rig_factory(max_connections=3)
    port = await rig.start()
    kept = []
    for _ in range(3):
        reader, writer = await _connect(port)
        writer.write(b"GET /next HTTP/1.1\r\nHost: x\r\n\r\n")
        assert (await _response(reader))[0] == 200
        kept.append((reader, writer))
    with caplog.at_level(logging.WARNING, logger="lambda_freeze.http"):
        for _ in range(5):
            reader, writer = await _connect(port)
            status, headers, _ = await _response(reader)
            assert (status, headers["connection"]) == (503, "close")
            assert await _closed(reader)
    limit_lines = [r for r in caplog.records if "connection limit reached" in r.getMessage()]
    assert len(limit_lines) == 1  # one line for the episode, not one per refused connection
    kept_reader, kept_writer = kept.pop()
    kept_writer.write(b"GET /next HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    assert (await _response(kept_reader))[0] == 200
    assert await _closed(kept_reader)
    assert await _until(lambda: rig.server.connections < 3)
    reader, writer = await _connect(port)
    writer.write(b"GET /next HTTP/1.1\r\nHost: x\r\n\r\n")
    assert (await _response(reader))[0] == 200  # recovered


@pytest.mark.asyncio
async def test_a_connection_cap_above_the_file_limit_is_logged(
    rig_factory: Callable[..., Rig], caplog: pytest.LogCaptureFixture
) -> None:
    soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    with caplog.at_level(logging.WARNING, logger="lambda_freeze.http"):
        await rig_factory(max_connections=soft + 1).start()
        await rig_factory(max_connections=max(1, soft // 4)).start()
    warnings = [r.getMessage() for r in caplog.records if "file limit" in r.getMessage()]
    assert len(warnings) == 1, warnings  # past it the kernel resets connections without a word: said up front
    assert f"ulimit -n {soft}" in warnings[0]


# ------------------------------------------------------------------------------------------------- 100-continue
@pytest.mark.asyncio
async def test_100_continue_for_a_pipelined_request_comes_after_the_answers_before_it(
    rig_factory: Callable[..., Rig],
) -> None:
    rig = rig_factory()
    reader, writer = await _connect(await rig.start())
    writer.write(
        b"GET /hold HTTP/1.1\r\nHost: x\r\n\r\n"
        b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\nExpect: 100-continue\r\n\r\n"
    )
    await asyncio.wait_for(rig.held.wait(), 10)
    rig.release.set()
    status, _, body = await _response(reader)
    assert (status, body) == (200, b"released")  # the first request's own status, not "100 Continue"
    assert await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 10) == b"HTTP/1.1 100 Continue\r\n\r\n"
    writer.write(b"body")
    status, _, body = await _response(reader)
    assert (status, body) == (202, b"body")


# ------------------------------------------------------------------------------------------------- RFC 9112
@pytest.mark.parametrize(
    ("request_bytes", "status", "body"),
    [
        # absolute-form: a server must accept it, and route on its path (RFC 9112 section 3.2.2)
        (b"GET http://example.com/next?q=1 HTTP/1.1\r\nHost: example.com\r\n\r\n", 200, b"event /next"),
        (b"GET HTTP://example.com HTTP/1.1\r\nHost: example.com\r\n\r\n", 404, None),
        # exactly one Host in HTTP/1.1 (RFC 9112 section 3.2); HTTP/1.0 may go without
        (b"GET /next HTTP/1.1\r\n\r\n", 400, None),
        (b"GET /next HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n", 400, None),
        (b"GET /next HTTP/1.0\r\n\r\n", 200, b"event /next"),
        # a version this server does not speak (RFC 9110 section 15.6.6)
        (b"GET /next HTTP/2.0\r\nHost: x\r\n\r\n", 505, None),
        # a transfer coding it does not implement (RFC 9112 section 6.1)
        (b"POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip, chunked\r\n\r\n0\r\n\r\n", 501, None),
    ],
)
@pytest.mark.asyncio
async def test_requests_are_judged_as_rfc_9112_says(
    rig_factory: Callable[..., Rig], request_bytes: bytes, status: int, body: bytes | None
) -> None:
    rig = rig_factory()
    reader, writer = await _connect(await rig.start())
    writer.write(request_bytes)
    got, headers, got_body = await _response(reader)
    assert got == status, got_body
    if body is not None:
        assert got_body == body
    if status >= 500 or status == 400:
        assert headers["connection"] == "close"
        assert await _closed(reader)

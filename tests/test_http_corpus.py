"""The framing corpus (tests/http_corpus/) against this HTTP layer and a reference parser, and a fuzzer of request
streams cut at random points.

Differential: each case is sent over a real connection, and its accept/refuse decision compared with aiohttp's
pure-Python request parser (independent of llhttp); the deliberate differences are listed, with their reason, in
cases.toml, so that any other difference shows a regression. Fuzzer: what the layer makes of a stream must not
depend on how its bytes are cut; the protocol is fed the exact pieces (a socket would merge them).
"""

from __future__ import annotations

import asyncio
import re
import socket
import tomllib
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio
from aiohttp.base_protocol import BaseProtocol
from aiohttp.http_parser import HttpRequestParserPy
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from runtime_api.errors import runtime_error
from runtime_api.http import MAX_HEAD_BYTES, BodyError, HttpProtocol, HttpServer, Request, Response

CORPUS = Path(__file__).parent / "http_corpus"
CASES: dict[str, dict[str, Any]] = tomllib.loads((CORPUS / "cases.toml").read_text())
STREAMS = {path.stem: path.read_bytes() for path in sorted(CORPUS.glob("*.http"))}


async def _echo(request: Request) -> Response:
    try:
        body = await request.read()
    except BodyError as exc:
        return runtime_error(400, "Truncated", str(exc))
    seen = (request.method, request.path, request.query_string, sorted(request.headers.items()), body)
    return Response(200, repr((*seen, sorted(request.trailers.items()))).encode())


def _server() -> HttpServer:
    return HttpServer(
        _echo, max_body=1 << 20, error_response=lambda status, message: runtime_error(status, "E", message)
    )


def _statuses(wire: bytes) -> list[int]:
    """The status of each response on the wire (100 Continue excepted)."""
    statuses = []
    at = 0
    while at < len(wire):
        end = wire.index(b"\r\n\r\n", at) + 4
        head = wire[at:end]
        length = re.search(rb"\r\nContent-Length: (\d+)", head)
        at = end + (int(length.group(1)) if length else 0)
        status = int(head.split(b" ", 2)[1])
        if status != 100:
            statuses.append(status)
    return statuses


def reference_decision(data: bytes) -> str:
    loop = asyncio.get_running_loop()
    parser = HttpRequestParserPy(BaseProtocol(loop), loop, 2**16, max_line_size=16384, max_field_size=16384)
    try:
        parser.feed_data(data)
    except Exception:
        return "refuse"
    return "accept"


@pytest_asyncio.fixture
async def port() -> AsyncIterator[int]:
    server = _server()
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    await server.listen(sock)
    yield sock.getsockname()[1]
    await server.close(grace_s=1.0)


def test_every_stream_of_the_corpus_has_its_expectation() -> None:
    assert sorted(STREAMS) == sorted(CASES)


@pytest.mark.parametrize("name", sorted(CASES))
@pytest.mark.asyncio
async def test_the_corpus_is_decided_as_the_reference_decides(port: int, name: str) -> None:
    case = CASES[name]
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(STREAMS[name])
    writer.write_eof()  # every request of the stream is still answered
    try:
        wire = await asyncio.wait_for(reader.read(), 10)
    finally:
        writer.close()
    statuses = _statuses(wire)
    assert statuses == case["status"], wire[:300]
    ours = "accept" if all(status < 400 for status in statuses) else "refuse"
    assert reference_decision(STREAMS[name]) == case.get("reference", ours), case.get("why", "a regression")


# ------------------------------------------------------------------------------------- cut at random points
class _Wire(asyncio.Transport):
    """The transport a protocol writes to, in memory: the fuzzer decides exactly where the bytes are cut."""

    def __init__(self, protocol: HttpProtocol) -> None:
        super().__init__()
        self.protocol = protocol
        self.out = bytearray()
        self.closed = False
        self.reading = True

    def write(self, data: bytes | bytearray | memoryview) -> None:
        self.out += data

    def is_closing(self) -> bool:
        return self.closed

    def close(self) -> None:
        if not self.closed:
            self.closed = True
            asyncio.get_running_loop().call_soon(self.protocol.connection_lost, None)

    def pause_reading(self) -> None:
        self.reading = False

    def resume_reading(self) -> None:
        self.reading = True

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return {"sockname": ("127.0.0.1", 1), "peername": ("127.0.0.1", 2)}.get(name, default)

    def can_write_eof(self) -> bool:
        return True

    def write_eof(self) -> None:
        pass

    def get_write_buffer_size(self) -> int:
        return 0


async def _turns(condition: Any) -> None:
    for _ in range(1000):
        if condition():
            return
        await asyncio.sleep(0)  # wait-ok: one loop turn (bounded count), not time


async def _run(pieces: list[bytes]) -> bytes:
    """What the layer writes back for these pieces (Date removed), once it has answered all it will."""
    server = _server()
    protocol = HttpProtocol(server)
    wire = _Wire(protocol)
    protocol.connection_made(wire)
    for piece in pieces:
        await _turns(lambda: wire.reading or wire.closed)  # a paused connection is read once its handler catches up
        if wire.closed:
            break
        protocol.data_received(piece)
    if not wire.closed:
        # the end of the stream once everything sent is answered: a half-close's effect is not what is compared
        await _turns(lambda: (wire.reading and protocol.task is None) or wire.closed)
        if not protocol.eof_received():
            wire.close()
    await _turns(lambda: protocol.task is None)
    # Only the header line: an echoed body may hold "Date: " too (the handler's repr escapes its CR and LF, so a
    # CRLF before the name is always a header's)
    return re.sub(rb"\r\nDate: [^\r\n]*", b"", bytes(wire.out))


TOKEN = st.text("abcdefghijklmnopqrstuvwxyz-", min_size=1, max_size=12)
VALUE = st.text(st.characters(min_codepoint=0x21, max_codepoint=0x7E), max_size=20)


@st.composite
def requests(draw: st.DrawFn) -> bytes:
    method = draw(st.sampled_from(["GET", "POST", "PUT"]))
    target = "/" + draw(st.text("abc/%20?=&", max_size=12))
    version = draw(st.sampled_from(["1.1", "1.1", "1.0"]))
    fields = [f"{name}: {value}" for name, value in draw(st.lists(st.tuples(TOKEN, VALUE), max_size=4))]
    fields = [f for f in fields if not f.lower().startswith(("host", "content-length", "transfer-encoding", "expect"))]
    if version == "1.1":
        fields.insert(draw(st.integers(0, len(fields))), "Host: x")
    if version == "1.0":
        fields.append("Connection: keep-alive")
    body = draw(st.binary(max_size=40))
    framing = draw(st.sampled_from(["none", "length", "chunked"]))
    payload = b""
    if framing == "length" or (framing == "chunked" and version == "1.0"):
        fields.append(f"Content-Length: {len(body)}")
        payload = body
    elif framing == "chunked":
        fields.append("Transfer-Encoding: chunked")
        cuts = sorted(draw(st.lists(st.integers(0, len(body)), max_size=3)))
        chunks = [body[a:b] for a, b in zip([0, *cuts], [*cuts, len(body)], strict=True) if b > a]
        payload = b"".join(b"%x\r\n%b\r\n" % (len(c), c) for c in chunks) + b"0\r\n"
        payload += b"".join(f"{n}: {v}\r\n".encode() for n, v in draw(st.lists(st.tuples(TOKEN, VALUE), max_size=2)))
        payload += b"\r\n"
    head = f"{method} {target} HTTP/{version}\r\n" + "".join(f"{f}\r\n" for f in fields) + "\r\n"
    return head.encode() + payload


@st.composite
def near_the_head_bound(draw: st.DrawFn) -> bytes:
    """A head within a few bytes of the 64 KiB bound either side, after requests of the other framings."""
    before = b"".join(draw(st.lists(requests(), max_size=2)))
    start = b"GET /big HTTP/1.1\r\nHost: x\r\nX-Pad: "
    size = MAX_HEAD_BYTES + draw(st.integers(-3, 3))
    pad = size - len(start) - 4
    return before + start + b"p" * pad + b"\r\n\r\n" + draw(requests())


STREAM = (
    st.lists(requests(), min_size=1, max_size=4).map(b"".join)
    | st.lists(requests(), min_size=17, max_size=40).map(b"".join)  # past the read-ahead: parsed in turns
    | st.sampled_from(sorted(STREAMS.values()))
    | near_the_head_bound()
)


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(data=st.data())
def test_parsing_never_depends_on_how_the_bytes_are_cut(data: st.DataObject) -> None:
    stream = data.draw(STREAM)
    # anywhere, and often inside or just past the CRLF CRLF that ends a head or a chunked body, where a bound is
    # decided and where a read may hold the end of one request and the start of the next
    inside_ends = [m.start() + k for m in re.finditer(b"\r\n\r\n", stream) for k in (1, 2, 3, 4, 6, 20, 45)]
    inside_ends = [at for at in inside_ends if 0 < at < len(stream)]
    anywhere = st.integers(1, max(1, len(stream) - 1))
    cut = st.sampled_from(inside_ends) | anywhere if inside_ends else anywhere
    cut_at = set(data.draw(st.lists(cut, max_size=30)))
    if inside_ends:
        cut_at.add(data.draw(st.sampled_from(inside_ends)))  # at least one, whatever the seed (CI derandomizes)
    cuts = sorted(cut_at)
    pieces = [stream[a:b] for a, b in zip([0, *cuts], [*cuts, len(stream)], strict=True) if b > a]
    whole = asyncio.run(_run([stream]))
    assert _statuses(whole), whole[:200]  # every stream gets an answer
    assert asyncio.run(_run(pieces)) == whole
    if len(stream) <= 4096:  # every cut at once (a byte at a time: 64 KiB of it would take seconds)
        assert asyncio.run(_run([stream[i : i + 1] for i in range(len(stream))])) == whole

"""How a response is written on the wire: the status line, the header fields (with Date), and the body, whole or
streamed in chunks."""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable, Mapping
from http import HTTPStatus

from .message import Response, StreamingResponse

_PHRASES = {status.value: status.phrase.encode() for status in HTTPStatus}
NO_BODY_STATUSES = frozenset((204, 304))
CONTINUE = b"HTTP/1.1 100 Continue\r\n\r\n"


class _Clock:
    """The Date header, formatted once a second."""

    __slots__ = ("_second", "_value")

    def __init__(self) -> None:
        self._second = 0
        self._value = b""

    def date(self) -> bytes:
        now = int(time.time())
        if now != self._second:
            self._second = now
            self._value = http_date(now)
        return self._value


_DAYS = (b"Mon", b"Tue", b"Wed", b"Thu", b"Fri", b"Sat", b"Sun")
_MONTHS = (b"Jan", b"Feb", b"Mar", b"Apr", b"May", b"Jun", b"Jul", b"Aug", b"Sep", b"Oct", b"Nov", b"Dec")


def http_date(epoch_s: int) -> bytes:
    """RFC 9110's IMF-fixdate, e.g. ``Sun, 06 Nov 1994 08:49:37 GMT``."""
    t = time.gmtime(epoch_s)
    return b"%s, %02d %s %04d %02d:%02d:%02d GMT" % (
        _DAYS[t.tm_wday], t.tm_mday, _MONTHS[t.tm_mon - 1], t.tm_year, t.tm_hour, t.tm_min, t.tm_sec
    )


_clock = _Clock()


def head(status: int, headers: Mapping[str, str] | None, extra: list[bytes]) -> list[bytes]:
    lines = [b"HTTP/1.1 ", str(status).encode(), b" ", _PHRASES.get(status, b"Unknown"), b"\r\n"]
    if headers:
        for name, value in headers.items():
            if "\r" in value or "\n" in value:  # never let a value start a header of its own
                value = value.replace("\r", " ").replace("\n", " ")
            lines += (name.encode("latin-1"), b": ", value.encode("latin-1", "replace"), b"\r\n")
    lines += extra
    lines += (b"Date: ", _clock.date(), b"\r\n")
    return lines


def encode_response(response: Response, keep_alive: bool, *, http10: bool = False) -> bytes:
    extra: list[bytes] = []
    if response.content_type is not None:
        extra += (b"Content-Type: ", response.content_type.encode("latin-1"), b"\r\n")
    if response.status not in NO_BODY_STATUSES:
        extra += (b"Content-Length: ", str(len(response.body)).encode(), b"\r\n")
    if not keep_alive:
        extra.append(b"Connection: close\r\n")
    elif http10:  # an HTTP/1.0 client asked to keep the connection: it must be told it is kept
        extra.append(b"Connection: keep-alive\r\n")
    lines = head(response.status, response.headers, extra)
    lines.append(b"\r\n")
    if response.body and response.status not in NO_BODY_STATUSES:
        lines.append(response.body)
    return b"".join(lines)


async def write_stream(
    response: StreamingResponse,
    keep_alive: bool,
    write: Callable[[bytes], None],
    drain: Callable[[], Awaitable[None]],
    is_open: Callable[[], bool],
) -> bool:
    """Writes a streamed response in chunks, each once the one before it is drained (no faster than the client
    reads); False when the connection cannot be kept afterwards. A body that fails mid-way leaves the chunked coding
    unterminated, so the client sees the response as cut off."""
    extra = [b"Transfer-Encoding: chunked\r\n"]
    if not keep_alive:
        extra.append(b"Connection: close\r\n")
    write(b"".join([*head(response.status, response.headers, extra), b"\r\n"]))
    body = response.body
    try:
        async for piece in body:
            if not is_open():
                raise ConnectionResetError("the connection was closed")
            if piece:
                write(b"%x\r\n%b\r\n" % (len(piece), piece))
                await drain()
        write(b"0\r\n\r\n")
        await drain()
    except ConnectionError:
        return False
    finally:
        aclose = getattr(body, "aclose", None)
        if aclose is not None:
            await aclose()
    return keep_alive and is_open()

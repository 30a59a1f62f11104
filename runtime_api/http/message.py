"""What a handler of the HTTP layer deals with: the request (its body read whole or as it arrives, with its
trailers) and the response (whole, or streamed)."""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from typing import Protocol
from urllib.parse import parse_qsl

STREAM_HIGH_WATER = 1024 * 1024  # a streamed body's unread bytes at which the connection stops reading


class FlowControl(Protocol):
    """The connection a body arrives on, as the body steers it."""

    def pause_body(self) -> None: ...

    def resume_body(self) -> None: ...


class BodyTooLarge(Exception):
    """The request body is longer than allowed; ``size`` is its length as far as it is known."""

    def __init__(self, size: int | None):
        super().__init__(f"request body of {size} bytes is too large")
        self.size = size


class BodyError(Exception):
    """The request body broke off (the connection dropped) or was malformed (bad chunked framing)."""


class Response:
    """A whole response. ``headers`` keep their spelling; Content-Length and Date are added when it is written."""

    __slots__ = ("body", "content_type", "headers", "status")

    def __init__(
        self,
        status: int = 200,
        body: bytes = b"",
        *,
        headers: Mapping[str, str] | None = None,
        content_type: str | None = None,
    ):
        self.status = status
        self.body = body
        self.headers = headers
        self.content_type = content_type


class StreamingResponse:
    """A response whose body is written piece by piece, as ``body`` yields them (chunked transfer coding).

    The generator is closed when the caller goes away before it has ended, so its ``finally`` runs either way.
    """

    __slots__ = ("body", "headers", "status")

    def __init__(self, status: int, headers: Mapping[str, str], body: AsyncIterator[bytes]):
        self.status = status
        self.headers = headers
        self.body = body


Handler = Callable[["Request"], Awaitable[Response | StreamingResponse]]


class Body:
    """The body of one request as it arrives, read whole (up to the server's limit) or piece by piece.

    Until the handler reads it, at most the limit is kept: past it the connection stops reading, and a whole read
    raises ``BodyTooLarge``; a piece-by-piece read takes any length, the connection paused while it is behind.
    """

    __slots__ = (
        "_chunks",
        "_error",
        "_limit",
        "_protocol",
        "_streaming",
        "_unread",
        "_waiter",
        "done",
        "dropping",
        "expected",
        "size",
        "trailers",
    )

    def __init__(self, protocol: FlowControl, limit: int, expected: int | None):
        self._protocol = protocol
        self._limit = limit
        self._chunks: deque[bytes] = deque()
        self._unread = 0
        self._error: BaseException | None = None
        self._waiter: asyncio.Future[None] | None = None
        self._streaming = False
        self.expected = expected
        self.size = 0
        self.done = expected == 0
        self.dropping = False
        self.trailers: dict[str, str] = {}

    @property
    def too_large(self) -> bool:
        """Known to be over the limit for a whole read: by its Content-Length, or by what has arrived."""
        return (self.expected is not None and self.expected > self._limit) or self.size > self._limit

    # -------------------------------------------------------------------------------- fed by the protocol
    def feed(self, data: bytes) -> None:
        self.size += len(data)
        if self.dropping:
            return
        self._chunks.append(data)
        self._unread += len(data)
        if self._unread > (STREAM_HIGH_WATER if self._streaming else self._limit):
            self._protocol.pause_body()
        self._wake()

    def finish(self) -> None:
        self.done = True
        self._wake()

    def fail(self, exc: BaseException) -> None:
        if not self.done and self._error is None:
            self._error = exc
            self._wake()

    def drop(self) -> None:
        """Nobody will read the rest: what is kept and what still comes is thrown away."""
        self.dropping = True
        self._chunks.clear()
        self._unread = 0
        self._protocol.resume_body()

    def _wake(self) -> None:
        waiter = self._waiter
        if waiter is not None:
            self._waiter = None
            if not waiter.done():
                waiter.set_result(None)

    async def _wait(self) -> None:
        self._waiter = asyncio.get_running_loop().create_future()
        await self._waiter

    # -------------------------------------------------------------------------------- read by the handler
    async def read(self) -> bytes:
        while not self.done and self._error is None and not self.too_large:
            await self._wait()
        if self.too_large:
            raise BodyTooLarge(self.expected if self.expected is not None else self.size)
        if self._error is not None:
            raise BodyError(str(self._error)) from self._error
        if len(self._chunks) == 1:
            return self._chunks[0]
        return b"".join(self._chunks)

    async def stream(self) -> AsyncIterator[bytes]:
        self._streaming = True
        while True:
            if self._chunks:
                chunk = self._chunks.popleft()
                self._unread -= len(chunk)
                if self._unread <= STREAM_HIGH_WATER // 4:
                    self._protocol.resume_body()
                yield chunk
            elif self._error is not None:
                raise BodyError(str(self._error)) from self._error
            elif self.done:
                return
            else:
                await self._wait()


def origin_form(url: bytes) -> bytes:
    """The path and query of an absolute-form target (``http://host/path?q``), which a server must accept (RFC 9112
    section 3.2.2); any other target as it came."""
    if url[:1] == b"/" or b"://" not in url[:10]:
        return url
    scheme, _, rest = url.partition(b"://")
    if scheme.lower() not in (b"http", b"https"):
        return url
    slash = rest.find(b"/")
    query = rest.find(b"?")
    if slash < 0 or (0 <= query < slash):
        return b"/" + rest[query:] if query >= 0 else b"/"
    return rest[slash:]


class Request:
    """One request. Header names are lower-cased, a repeated field's values joined with ", "; ``params`` are the
    route's decoded path parameters.

    ``header_lines`` (each field as it came, in order, names lower-cased) and ``peer`` (the client's address) are
    kept only by a server made with ``raw_headers=True``; elsewhere they are None, and nobody pays for them.
    """

    __slots__ = (
        "_query",
        "body",
        "cancel_on_disconnect",
        "continue_pending",
        "header_lines",
        "headers",
        "keep_alive",
        "local_port",
        "method",
        "params",
        "path",
        "peer",
        "query_string",
        "target",
        "version",
    )

    def __init__(
        self,
        method: str,
        target: str,
        headers: dict[str, str],
        version: str,
        keep_alive: bool,
        body: Body,
        local_port: int,
    ):
        self.method = method
        self.target = target
        path, _, self.query_string = target.partition("?")
        self.path = path
        self.headers = headers
        self.version = version
        self.keep_alive = keep_alive
        self.body = body
        self.local_port = local_port
        self.params: dict[str, str] = {}
        self.header_lines: list[tuple[str, str]] | None = None
        self.peer: str | None = None
        self._query: dict[str, str] | None = None
        # A handler that only waits (a long poll) sets this: when the client goes away, it is cancelled.
        self.cancel_on_disconnect = False
        # Expect: 100-continue on a request read ahead: "100 Continue" is written once the requests before it are
        # answered, so that the client never takes it for their status.
        self.continue_pending = False

    @property
    def query(self) -> dict[str, str]:
        """The query parameters (the first of each name), decoded."""
        if self._query is None:
            self._query = {}
            for name, value in parse_qsl(self.query_string, keep_blank_values=True):
                self._query.setdefault(name, value)
        return self._query

    @property
    def content_length(self) -> int | None:
        return self.body.expected

    @property
    def trailers(self) -> dict[str, str]:
        """The trailer fields of a chunked body (names lower-cased), once the body has ended."""
        return self.body.trailers

    async def read(self) -> bytes:
        """The whole body; ``BodyTooLarge`` past the server's limit, ``BodyError`` when it broke off."""
        return await self.body.read()

    def stream(self) -> AsyncIterator[bytes]:
        """The body piece by piece as it arrives; ``BodyError`` when it broke off."""
        return self.body.stream()

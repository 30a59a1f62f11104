"""The HTTP front door's surface: API Gateway (REST and HTTP APIs) and function URLs on their own port. Every request
goes to a ``FrontDoorBackend`` as it arrived; its answer leaves as the service would write it."""

from __future__ import annotations

import logging
import socket
from collections.abc import AsyncIterator, ItemsView, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Protocol

import orjson

from .http import BodyError, BodyTooLarge, HttpLimits, HttpServer, Request, Response, StreamingResponse
from .protocol import MAX_SYNC_PAYLOAD_BYTES

log = logging.getLogger("lambda_freeze.front_door")


@dataclass(frozen=True, slots=True)
class HttpRequest:
    """One request as the front door received it; the backend builds the service's event from it."""

    method: str
    path: str  # as sent, percent-encoded
    query_string: str  # as sent, without the '?'
    headers: Mapping[str, str]  # names lower-cased; a repeated field's values joined with ", "
    body: bytes
    host: str  # the Host header without its port, lower-cased
    source_ip: str  # the address of the connection's peer, as the services report it (never X-Forwarded-For)
    protocol: str = "HTTP/1.1"
    # Each header field as it came, in order, names lower-cased: the events show repeated fields apart. Empty when
    # the request was made up without them (``headers`` then stand for one field each).
    header_lines: Sequence[tuple[str, str]] = ()


@dataclass(slots=True)
class HttpAnswer:
    """What the client gets. ``headers`` may repeat a name (``Set-Cookie``); ``stream``, when set, is the body."""

    status: int
    headers: list[tuple[str, str]] = field(default_factory=list)
    body: bytes = b""
    stream: AsyncIterator[bytes] | None = None


class FrontDoorBackend(Protocol):
    """The engine as the front door sees it: routes a request to a function, and answers as the service does."""

    async def handle(self, request: HttpRequest) -> HttpAnswer: ...

    def too_large(self, host: str) -> HttpAnswer:
        """The answer to a request whose body is over the service's limit (API Gateway and function URLs: 413)."""
        ...


class HeaderLines(Mapping[str, str]):
    """Response headers in order, a name possibly repeated: ``items()`` yields every line, as written."""

    def __init__(self, lines: Sequence[tuple[str, str]]):
        self._lines = list(lines)

    def __getitem__(self, name: str) -> str:
        for key, value in reversed(self._lines):
            if key.lower() == name.lower():
                return value
        raise KeyError(name)

    def __iter__(self) -> Iterator[str]:
        return iter(dict.fromkeys(key for key, _ in self._lines))

    def __len__(self) -> int:
        return len(self._lines)

    def items(self) -> ItemsView[str, str]:
        return _Lines(self)

    @property
    def lines(self) -> list[tuple[str, str]]:
        return self._lines


class _Lines(ItemsView[str, str]):
    def __init__(self, headers: HeaderLines):
        super().__init__(headers)
        self._headers = headers

    def __iter__(self) -> Iterator[tuple[str, str]]:
        return iter(self._headers.lines)


class FrontDoorServer:
    """The front door on one listening socket. Lifecycle: ``await listen(sock)`` → serve → ``await close(grace_s)``."""

    def __init__(self, backend: FrontDoorBackend, limits: HttpLimits | None = None):
        self._backend = backend
        # One byte over Lambda's sync limit so that an oversize body is told apart from a full one.
        self._http = HttpServer(
            self._dispatch,
            max_body=MAX_SYNC_PAYLOAD_BYTES + 1,
            error_response=_plain_error,
            limits=limits,
            raw_headers=True,  # the events show repeated fields apart, and the caller's address
        )

    async def listen(self, sock: socket.socket) -> None:
        await self._http.listen(sock)

    async def close(self, grace_s: float = 1.0) -> None:
        await self._http.close(grace_s)

    async def _dispatch(self, request: Request) -> Response | StreamingResponse:
        try:
            body = await request.read()
        except BodyTooLarge:
            return _render(self._backend.too_large(_host(request)))
        except BodyError as exc:
            return _plain_error(400, f"the request body broke off: {exc}")
        incoming = HttpRequest(
            method=request.method,
            path=request.path or "/",
            query_string=request.query_string,
            headers=request.headers,
            body=body,
            host=_host(request),
            # The services report the address the connection came from: X-Forwarded-For is the client's to write.
            # A peer is always known on the TCP sockets the front door listens on.
            source_ip=request.peer or "127.0.0.1",
            protocol=f"HTTP/{request.version}",
            header_lines=request.header_lines or (),
        )
        try:
            answer = await self._backend.handle(incoming)
        except Exception:  # a boundary: the client gets the services' own answer to a failure behind them
            log.exception("front door: %s %s failed", request.method, request.path)
            return _plain_error(500, "Internal server error")
        return _render(answer)


def _host(request: Request) -> str:
    return request.headers.get("host", "").rsplit(":", 1)[0].lower()


def _render(answer: HttpAnswer) -> Response | StreamingResponse:
    headers = HeaderLines(answer.headers)
    if answer.stream is not None:
        return StreamingResponse(answer.status, headers, answer.stream)
    return Response(answer.status, answer.body, headers=headers)


def _plain_error(status: int, message: str) -> Response:
    return Response(status, orjson.dumps({"message": message}), content_type="application/json")

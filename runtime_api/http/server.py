"""The server: one request handler behind any number of listening sockets; a connection cap, the timeouts (one
periodic sweep over the connections, no timer per request), and a graceful close."""

from __future__ import annotations

import asyncio
import logging
import resource
import socket
from collections.abc import Callable

from .connection import HttpProtocol
from .limits import Connection, HttpLimits
from .message import Handler, Response
from .raw_headers import RawHeadersProtocol

log = logging.getLogger("lambda_freeze.http")

# Asked of each new connection (its peer and local addresses): None admits it, else the response it gets.
Vetter = Callable[[object, object], Response | None]


class HttpServer:
    """One request handler behind any number of listening sockets.

    ``error_response(status, message)`` renders the errors of the HTTP layer itself (unknown route, method not
    allowed, malformed request, full server) in the API's own shape. ``vet`` (optional) is asked about each new
    connection before it is served. ``raw_headers`` keeps each request's header fields one by one and the client's
    address (``Request.header_lines``, ``Request.peer``), at a small cost per request that other servers do not pay.
    """

    def __init__(
        self,
        handler: Handler,
        *,
        max_body: int,
        error_response: Callable[[int, str], Response],
        limits: HttpLimits | None = None,
        vet: Vetter | None = None,
        raw_headers: bool = False,
    ):
        self.dispatch = handler
        self.max_body = max_body
        self.error_response = error_response
        self.limits = limits or HttpLimits()
        self.vet = vet
        self._protocol: type[HttpProtocol] = RawHeadersProtocol if raw_headers else HttpProtocol
        self.closing = False
        self._listeners: list[asyncio.Server] = []
        self._connections: set[Connection] = set()
        self._refused_full = 0  # connections refused since the server became full
        self._sweeper: asyncio.Task[None] | None = None

    @property
    def connections(self) -> int:
        return len(self._connections)

    # ------------------------------------------------------------------------------------------- ServerSide
    def admit(self, connection: Connection, peer: object, sockname: object) -> Response | None:
        if self.closing:
            return self.error_response(503, "the server is shutting down")
        if len(self._connections) >= self.limits.max_connections:
            if self._refused_full == 0:  # one line per episode, not one per connection
                log.warning(
                    "HTTP connection limit reached (%d open): new connections are answered 503 until some close "
                    "(--http-max-connections)",
                    len(self._connections),
                )
            self._refused_full += 1
            return self.error_response(503, "too many connections: try again later")
        if self.vet is not None:
            refusal = self.vet(peer, sockname)
            if refusal is not None:
                return refusal
        self._connections.add(connection)
        return None

    def gone(self, connection: Connection) -> None:
        self._connections.discard(connection)
        if self._refused_full and len(self._connections) < self.limits.max_connections:
            log.warning("HTTP connections below the limit again; %d were refused meanwhile", self._refused_full)
            self._refused_full = 0

    # ------------------------------------------------------------------------------------------- lifecycle
    async def listen(self, sock: socket.socket) -> asyncio.Server:
        """Serve on ``sock`` (bound; listened on here)."""
        if not self._listeners:
            _check_file_limit(self.limits.max_connections)
        loop = asyncio.get_running_loop()
        listener = await loop.create_server(lambda: self._protocol(self), sock=sock, backlog=512)
        self._listeners.append(listener)
        limits = self.limits
        timed = (limits.header_timeout_s, limits.idle_timeout_s, limits.body_timeout_s) != (None, None, None)
        if self._sweeper is None and timed:
            self._sweeper = loop.create_task(self._sweep())
        return listener

    async def _sweep(self) -> None:
        """Close the connections whose client has kept them waiting past their deadline."""
        loop = asyncio.get_running_loop()
        interval_s = self.limits.sweep_interval_s()
        while True:
            await asyncio.sleep(interval_s)  # wait-ok: the sweep's period is its purpose
            now = loop.time()
            expired = [c for c in self._connections if 0.0 < c.deadline <= now and c.waiting_for_client()]
            for connection in expired:
                connection.time_out()

    def stop_listening(self, listener: asyncio.Server) -> None:
        """Stop accepting on one socket, and close the idle connections that came through it."""
        if listener in self._listeners:
            self._listeners.remove(listener)
        ports = {sock.getsockname()[1] for sock in listener.sockets}
        listener.close()
        for connection in list(self._connections):
            if connection.local_port in ports:
                connection.close_when_idle()

    async def close(self, grace_s: float) -> None:
        """Stop accepting; requests in flight get ``grace_s`` to be answered, then are cancelled."""
        self.closing = True
        if self._sweeper is not None:
            self._sweeper.cancel()
            self._sweeper = None
        for listener in self._listeners:
            listener.close()
        self._listeners.clear()
        for connection in list(self._connections):
            connection.close_when_idle()
        tasks = [c.task for c in self._connections if c.task is not None]
        if tasks:
            await asyncio.wait(tasks, timeout=grace_s)
        for connection in list(self._connections):
            connection.abort()
        remaining = [c.task for c in self._connections if c.task is not None]
        if remaining:
            await asyncio.wait(remaining, timeout=1.0)


def _check_file_limit(max_connections: int) -> None:
    """Past the process's file limit, the kernel resets new connections and nothing is logged: say so up front."""
    soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != resource.RLIM_INFINITY and soft < max_connections + 64:
        log.warning(
            "the file limit (ulimit -n %d) is below --http-max-connections %d: past it, new connections are reset "
            "without a 503; raise the limit or lower the cap",
            soft,
            max_connections,
        )

"""The server: one request handler behind any number of listening sockets, closed gracefully."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Callable

from .connection import HttpProtocol
from .message import Handler, Response


class HttpServer:
    """One request handler behind any number of listening sockets.

    ``error_response(status, message)`` renders the errors of the HTTP layer itself (unknown route, method not
    allowed, malformed request) in the API's own shape.
    """

    def __init__(
        self,
        handler: Handler,
        *,
        max_body: int,
        error_response: Callable[[int, str], Response],
    ):
        self.dispatch = handler
        self.max_body = max_body
        self.error_response = error_response
        self.closing = False
        self._listeners: list[asyncio.Server] = []
        self._connections: set[HttpProtocol] = set()

    async def listen(self, sock: socket.socket) -> asyncio.Server:
        """Serve on ``sock`` (bound; listened on here)."""
        loop = asyncio.get_running_loop()
        listener = await loop.create_server(lambda: HttpProtocol(self), sock=sock, backlog=512)
        self._listeners.append(listener)
        return listener

    def stop_listening(self, listener: asyncio.Server) -> None:
        """Stop accepting on one socket, and close the idle connections that came through it."""
        if listener in self._listeners:
            self._listeners.remove(listener)
        sockets = listener.sockets
        ports = {sock.getsockname()[1] for sock in sockets}
        listener.close()
        for connection in list(self._connections):
            if connection._local_port in ports:
                connection.close_when_idle()

    async def close(self, grace_s: float) -> None:
        """Stop accepting; requests in flight get ``grace_s`` to be answered, then are cancelled."""
        self.closing = True
        for listener in self._listeners:
            listener.close()
        self._listeners.clear()
        for connection in list(self._connections):
            connection.close_when_idle()
        tasks = [c._task for c in self._connections if c._task is not None]
        if tasks:
            await asyncio.wait(tasks, timeout=grace_s)
        for connection in list(self._connections):
            connection.abort()
        remaining = [c._task for c in self._connections if c._task is not None]
        if remaining:
            await asyncio.wait(remaining, timeout=1.0)

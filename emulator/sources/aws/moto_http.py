"""The embedded moto server's HTTP handling with keep-alive: werkzeug's development server (what moto's own
``ThreadedMotoServer`` runs) answers every request with ``Connection: close``, so each SQS call costs a new TCP
connection, a new server thread and a 10 ms drain check. This handler keeps werkzeug's threaded server, one thread
per connection, and answers with a ``Content-Length`` on a connection that stays open: the request body is read
to its end (or the connection closed when its end is unknown) and the answer is sent whole.

Used by ``moto_child``; the application is moto's own ``DomainDispatcherApplication``.
"""

from __future__ import annotations

import sys
import traceback
from typing import IO, Any, cast

from moto.moto_server.werkzeug_app import MotoRequestHandler
from werkzeug.serving import BaseWSGIServer, make_server
from werkzeug.wsgi import LimitedStream

_NO_BODY = frozenset({204, 304})


class KeepAliveHandler(MotoRequestHandler):
    disable_nagle_algorithm = True  # an answer must not wait for the ACK of the one before (delayed ACK: 40 ms)

    def run_wsgi(self) -> None:
        environ = self.make_environ()
        body_in: LimitedStream | None = None
        if environ.get("wsgi.input_terminated"):  # a chunked request: its end is the dechunker's to find
            self.close_connection = True
        else:
            body_in = LimitedStream(cast(IO[bytes], self.rfile), int(environ.get("CONTENT_LENGTH") or 0))
            environ["wsgi.input"] = body_in
        started: list[Any] = []
        chunks: list[bytes] = []

        def start_response(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> Any:
            started[:] = [status, headers]
            return chunks.append

        try:
            result = self.server.app(environ, start_response)
            try:
                chunks.extend(result)
            finally:
                close = getattr(result, "close", None)
                if close is not None:
                    close()
        except Exception:  # a boundary: moto answers its own errors; anything else is a 500, as werkzeug gives
            self.close_connection = True
            self.send_error(500, "Internal Server Error")
            traceback.print_exc(file=sys.stderr)
            return
        if body_in is not None:
            body_in.exhaust()  # what the application left unread is not the next request
        status, headers = started
        code, _, reason = status.partition(" ")
        self.send_response(int(code), reason)
        names = set()
        for name, value in headers:
            self.send_header(name, value)
            names.add(name.lower())
        body = b"".join(chunks)
        if "content-length" not in names and int(code) not in _NO_BODY and int(code) >= 200:
            self.send_header("Content-Length", str(len(body)))
        if self.close_connection:
            self.send_header("Connection", "close")
        # The head and the body in one write (http.server keeps the head in _headers_buffer until end_headers).
        head: list[bytes] = self.__dict__["_headers_buffer"]
        head.append(b"\r\n")
        if self.command != "HEAD":
            head.append(body)
        self.wfile.write(b"".join(head))
        head.clear()

    def log_request(self, code: int | str = "-", size: int | str = "-") -> None:
        """Not logged: a line per request (which werkzeug formats even when its logger drops it)."""


def keep_alive_server(app: Any) -> BaseWSGIServer:
    """werkzeug's threaded server on a free loopback port, with ``KeepAliveHandler``."""
    return make_server("127.0.0.1", 0, app, threaded=True, request_handler=KeepAliveHandler)

"""HTTP/1.1 for the emulator's APIs: asyncio protocols, with llhttp (through httptools) parsing the requests.

Both APIs are small and fixed: a handful of routes, bodies of at most a few MB, long polls, one streamed request body
(a runtime's streamed response, whose outcome comes in the trailers of its chunked body) and one streamed response
(InvokeWithResponseStream). A general web framework costs more per request than the rest of an invocation put
together, and drops the trailers of chunked requests; this package is the part of one that these APIs use:
``message`` (requests, bodies, responses), ``routing``, ``limits`` (bounds and timeouts), ``framing`` (the parser
fed within those bounds), ``connection`` (parsing and answering one connection), ``raw_headers`` (a connection that
also keeps each header field apart and the client's address), ``wire`` (a response on the wire) and ``server`` (the
listening sockets, the connection cap, the timeout sweep).

- ``Router`` maps a method and a path to a handler: ``async handler(request) -> Response | StreamingResponse``.
- ``HttpServer`` serves one handler on any number of listening sockets, keeps connections alive (requests on one
  connection are answered in order, no faster than the client reads the answers), answers
  ``Expect: 100-continue``, bounds request heads (on the bytes as they arrive) and bodies, times out clients that
  stall (``HttpLimits``), caps its connections, and closes gracefully: in-flight requests get a grace period,
  then are cancelled.
- A request body is read whole (``await request.read()``) or piece by piece as it arrives
  (``async for chunk in request.stream()``, with the connection paused while the handler is behind); the trailers
  of a chunked body are in ``request.trailers`` once it has ended. A handler may answer before reading the body:
  the rest of it is then read and dropped, and the connection goes on.
"""

from .connection import HttpProtocol
from .limits import MAX_HEAD_BYTES, MAX_LINE_BYTES, MAX_PIPELINED, HttpLimits
from .message import STREAM_HIGH_WATER, Body, BodyError, BodyTooLarge, Handler, Request, Response, StreamingResponse
from .routing import MethodNotAllowed, NotFound, Router, route_errors
from .server import HttpServer
from .wire import encode_response

__all__ = [
    "MAX_HEAD_BYTES",
    "MAX_LINE_BYTES",
    "MAX_PIPELINED",
    "STREAM_HIGH_WATER",
    "Body",
    "BodyError",
    "BodyTooLarge",
    "Handler",
    "HttpLimits",
    "HttpProtocol",
    "HttpServer",
    "MethodNotAllowed",
    "NotFound",
    "Request",
    "Response",
    "Router",
    "StreamingResponse",
    "encode_response",
    "route_errors",
]

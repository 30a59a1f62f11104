"""Feeds llhttp so that no request head outgrows its bound, whatever the client sends and however it is cut.

llhttp (through httptools) hands a header field over only once it has ended, and httptools grows the field by
concatenation meanwhile: a line that never ends costs memory without bound and quadratic copying. So the bytes are
given to the parser cut where a head can end (``CRLF CRLF``) or where a body whose length is known ends: the head
being read is then counted on the wire, exactly, and refused as soon as it passes its bound, before the parser
holds any of the excess. One ``bytes.find`` per piece: constant work per byte.
"""

from __future__ import annotations

from collections.abc import Callable

_END = b"\r\n\r\n"

HEAD = 0  # a request head is being read (or awaited)
LENGTH = 1  # a body of known length
CHUNKED = 2  # a chunked body, its trailers included


class HeadTooLarge(Exception):
    """A request head, or a chunked body's framing and trailers, passed its bound."""


class Framing:
    """Where the byte stream stands, and the parser fed piece by piece.

    The connection reports what the parser found: ``body(expected)`` once a head is complete (``None``: chunked),
    ``message_done()`` once a request has ended; ``moved`` is set by the connection on every piece of body data.
    """

    __slots__ = ("_feed", "_max_head", "_remaining", "_seen", "_tail", "hold", "moved", "state")

    def __init__(self, feed: Callable[[bytes], None], max_head_bytes: int):
        self._feed = feed
        self._max_head = max_head_bytes
        self.state = HEAD
        self._seen = 0  # bytes of the current head (or of chunked framing since body data last arrived)
        self._tail = b""  # the last bytes of the previous piece, where an end marker may have begun
        self._remaining = 0  # of a body of known length
        self.moved = False
        self.hold = False  # set by the connection while it reads no more: the rest of a read is handed back

    def body(self, expected: int | None) -> None:
        self._seen = 0
        self._tail = b""
        if expected is None:
            self.state = CHUNKED
            self.moved = False
        else:
            self.state = LENGTH
            self._remaining = expected

    def message_done(self) -> None:
        self.state = HEAD
        self._seen = 0
        self._tail = b""

    def _end(self, data: bytes) -> int:
        """The offset in ``data`` just past the first ``CRLF CRLF`` (that may have begun in the last piece), or -1."""
        tail = self._tail
        if tail:
            at = (tail + data[:3]).find(_END)
            if at >= 0:
                return at + 4 - len(tail)
        at = data.find(_END)
        return at + 4 if at >= 0 else -1

    def _keep_tail(self, data: bytes) -> None:
        self._tail = data[-3:] if len(data) >= 3 else (self._tail + data)[-3:]

    def feed(self, data: bytes) -> bytes:
        """Feed ``data`` to the parser; ``HeadTooLarge`` (with nothing of the excess fed) when a bound is passed.
        What ``hold`` kept from the parser (a read holds many pipelined requests) is returned, to be fed later."""
        feed = self._feed
        if self.state == HEAD and not self._tail and data.endswith(_END):
            # the usual read: whole requests ending with a head (a GET); cut where a head ends all the same
            end = data.find(_END) + 4
            if end == len(data):
                seen = self._seen + end
                if seen > self._max_head:
                    raise HeadTooLarge
                self._seen = seen
                feed(data)
                return b""
        while data:
            if self.hold:
                return data
            state = self.state
            if state == LENGTH:
                remaining = self._remaining
                if len(data) <= remaining:
                    self._remaining = remaining - len(data)
                    feed(data)
                    return b""
                self._remaining = 0
                piece, data = data[:remaining], data[remaining:]
                feed(piece)
                continue
            end = self._end(data) if self._tail else data.find(_END)
            if not self._tail and end >= 0:
                end += 4
            if end < 0 or end == len(data):
                piece, data = data, b""
            else:
                piece, data = data[:end], data[end:]
            if state == CHUNKED:
                # Body data and framing interleave in one piece: the count is checked once the parser has seen it
                # (the excess held is then at most one piece), and restarts whenever body data arrived.
                self._keep_tail(piece)
                self.moved = False
                feed(piece)
                if self.state == CHUNKED:
                    if self.moved:
                        self._seen = 0
                    else:
                        self._seen += len(piece)
                        if self._seen > self._max_head:
                            raise HeadTooLarge
                continue
            seen = self._seen + len(piece)
            if seen > self._max_head:
                raise HeadTooLarge
            self._seen = seen
            if end < 0:
                self._keep_tail(piece)
            elif self._tail:
                self._tail = b""
            feed(piece)  # may end the head or the message: ``body()`` or ``message_done()`` reset the count
        return b""

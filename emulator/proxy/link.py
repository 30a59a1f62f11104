"""One direction of one connection: input → no-op → toxic → … → socket, re-linked live as toxics come and go.

The chain always starts with a no-op stub whose input never changes, so the reader keeps feeding the same queue
while toxics are appended, updated or removed behind it (toxiproxy's ToxicLink). With no toxic at all the chain
is not running and the source socket writes straight to the destination socket (see ``Side.refresh_forward``).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Protocol

from .chunk import Chunk
from .events import EventKind
from .stub import StubConnection, ToxicStub
from .toxics.noop import Noop

if TYPE_CHECKING:
    from .registry import ToxicEntry
    from .side import Side

# Bytes read but not yet written out (queued in toxics, held, paced) beyond which the source stops being read,
# so a slow toxic pushes back on the sender through TCP flow control instead of growing memory without bound.
BACKLOG_HIGH_BYTES = 1 << 20
BACKLOG_LOW_BYTES = 256 << 10

_NOOP = Noop()


class LinkConnection(StubConnection, Protocol):
    """What a link, and the stubs in it, ask of their connection (``Connection``)."""

    @property
    def finished(self) -> bool: ...

    def deliver(self, link: ToxicLink, chunk: Chunk) -> None: ...


class ToxicLink:
    def __init__(self, conn: LinkConnection, direction: str, source: Side, dest: Side):
        self.conn = conn
        self.direction = direction  # "upstream" (client → server) | "downstream" (server → client)
        self.source = source
        self.dest = dest
        self.head = ToxicStub(self, None, _NOOP)
        self.stubs: list[ToxicStub] = [self.head]
        self.backlog_bytes = 0
        self._backlog_paused = False

    @property
    def toxic_names(self) -> tuple[str, ...]:
        return tuple(stub.name for stub in self.stubs[1:])

    @property
    def idle(self) -> bool:
        """No toxic in the chain: bytes may bypass it."""
        return len(self.stubs) == 1

    def _index(self, name: str) -> int | None:
        for i, stub in enumerate(self.stubs[1:], start=1):
            if stub.name == name:
                return i
        return None

    # ---------------------------------------------------------------------------------------------- data path
    def feed(self, chunk: Chunk) -> None:
        n = len(chunk.data)
        if n:
            self.backlog_bytes += n
            if not self._backlog_paused and self.backlog_bytes > BACKLOG_HIGH_BYTES:
                self._backlog_paused = True
                self.source.pause_reading("backlog")
        if len(self.stubs) > 1:
            self.head.put(chunk)
        else:
            self.conn.deliver(self, chunk)

    def deliver(self, chunk: Chunk) -> None:
        """The output of the last stub."""
        self.conn.deliver(self, chunk)

    def settled(self, nbytes: int) -> None:
        """``nbytes`` left the link (written to the destination or discarded)."""
        self.backlog_bytes -= nbytes
        if self._backlog_paused and self.backlog_bytes <= BACKLOG_LOW_BYTES:
            self._backlog_paused = False
            self.source.resume_reading("backlog")

    def drop(self, chunk: Chunk, *, toxic: str | None, reason: str) -> None:
        self.settled(len(chunk.data))
        self.conn.emit(
            EventKind.DROPPED,
            direction=self.direction,
            toxic=toxic,
            nbytes=len(chunk.data) or None,
            how=chunk.end.value if chunk.end else None,
            detail=reason,
        )

    # ------------------------------------------------------------------------------------------- re-linking
    def build(self, entries: list[ToxicEntry]) -> None:
        """Set up the chain of a new connection (nothing flows yet, so nothing needs interrupting)."""
        for entry in entries:
            stub = ToxicStub(self, entry, entry.stream_toxic)
            self.stubs[-1].output = stub.put
            self.stubs.append(stub)
        if len(self.stubs) > 1:
            for stub in self.stubs:
                stub.start()

    async def add(self, entry: ToxicEntry) -> None:
        """Append a toxic on a live connection: interrupt the last stub, point it at the new one, restart both."""
        if self._index(entry.name) is not None or self.conn.finished:
            return
        new = ToxicStub(self, entry, entry.stream_toxic)
        last = self.stubs[-1]
        await last.interrupt()
        if self.conn.finished:
            return
        new.output = last.output
        last.output = new.put
        self.stubs.append(new)
        new.start()
        last.start()
        self.source.refresh_forward()

    async def update(self, entry: ToxicEntry) -> None:
        """New settings for a toxic on a live connection; its per-connection state is kept if the kind is the same."""
        i = self._index(entry.name)
        if i is None or self.conn.finished:
            return
        stub = self.stubs[i]
        await stub.interrupt()
        if self.conn.finished:
            return
        if type(stub.toxic) is not type(entry.stream_toxic):
            stub.state = entry.stream_toxic.new_state()
        stub.toxic = entry.stream_toxic
        stub.entry = entry
        stub.start()

    async def remove(self, name: str) -> None:
        """Take a toxic out of a live chain without losing or reordering a byte (toxiproxy's RemoveToxic)."""
        i = self._index(name)
        if i is None or self.conn.finished:
            return
        stub, prev = self.stubs[i], self.stubs[i - 1]
        await stub.interrupt()
        await prev.interrupt()  # from here on nothing writes into ``stub``'s input
        if self.conn.finished:
            return
        stub.flush()  # what it still had queued is older than anything ``prev`` will write from now on
        prev.output = stub.output
        del self.stubs[i]
        if len(self.stubs) == 1:
            self.head.flush()
            self.source.refresh_forward()  # back to the direct path; every queued chunk is already out
        else:
            prev.start()

    def cancel(self) -> None:
        for stub in self.stubs:
            stub.cancel()

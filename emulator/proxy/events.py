"""The proxy's event log: structured records of connects, closes and faults, kept bounded and offered to subscribers."""

from __future__ import annotations

import enum
import logging
import time
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass

log = logging.getLogger("lambda_freeze.proxy")

EVENTS_MAX = 10_000  # records kept per proxy; older ones are forgotten, subscribers saw them all


class EventKind(enum.StrEnum):
    LISTEN = "listen"  # an environment got its own listening port
    UNLISTEN = "unlisten"
    CONNECT = "connect"  # a client connected to the proxy
    UPSTREAM = "upstream"  # the proxy's connection to the upstream is up
    CONNECT_FAILED = "connect_failed"  # the upstream could not be reached
    REFUSED = "refused"  # a connect toxic turned the client away
    CLOSE = "close"  # one socket was closed or half-closed: ``side``, ``by`` whom, ``how`` (fin | rst)
    CLOSED = "closed"  # the proxied connection is gone entirely
    FIRED = "fired"  # a toxic acted on a connection
    HELD = "held"  # bytes towards a frozen environment are being held
    RELEASED = "released"  # held bytes delivered
    DROPPED = "dropped"  # bytes (or a FIN/RST) discarded
    TOXIC_ADDED = "toxic_added"
    TOXIC_UPDATED = "toxic_updated"
    TOXIC_REMOVED = "toxic_removed"


@dataclass(frozen=True, slots=True)
class ProxyEvent:
    """One record. ``wall_s`` is ``time.time()``, ``mono_s`` is ``time.monotonic()`` (the timeline's clock)."""

    kind: EventKind
    wall_s: float
    mono_s: float
    proxy: str
    env_id: str | None = None
    conn_id: str | None = None
    direction: str | None = None  # "upstream" (client → server) | "downstream" (server → client)
    side: str | None = None  # "client" | "upstream": the socket concerned
    by: str | None = None  # who acted: "client" | "upstream" | "proxy"
    how: str | None = None  # "fin" | "rst"
    toxic: str | None = None  # the toxic's name
    nbytes: int | None = None
    detail: str | None = None

    def as_dict(self) -> dict[str, object]:
        return {name: getattr(self, name) for name in self.__slots__ if getattr(self, name) is not None}


Subscriber = Callable[[ProxyEvent], None]


class EventLog:
    """A bounded deque of records; every subscriber is called synchronously with each new record."""

    def __init__(self, proxy: str, maxlen: int = EVENTS_MAX):
        self.proxy = proxy
        self._records: deque[ProxyEvent] = deque(maxlen=maxlen)
        self._subscribers: list[Subscriber] = []

    def emit(self, kind: EventKind, **fields: object) -> ProxyEvent:
        event = ProxyEvent(kind, time.time(), time.monotonic(), self.proxy, **fields)  # type: ignore[arg-type]
        self._records.append(event)
        for subscriber in tuple(self._subscribers):
            try:
                subscriber(event)
            except Exception:
                # A subscriber's bug must not break the connection that emitted the record.
                log.exception("proxy event subscriber %r failed on %s", subscriber, event.kind)
        return event

    def subscribe(self, subscriber: Subscriber) -> Callable[[], None]:
        """Call ``subscriber`` with every future record; returns the function that unsubscribes it."""
        self._subscribers.append(subscriber)

        def unsubscribe() -> None:
            if subscriber in self._subscribers:
                self._subscribers.remove(subscriber)

        return unsubscribe

    def records(self, kind: EventKind | str | None = None, *, env_id: str | None = None) -> list[ProxyEvent]:
        return [e for e in self._records if (kind is None or e.kind == kind) and (env_id is None or e.env_id == env_id)]

    def __iter__(self) -> Iterator[ProxyEvent]:
        return iter(tuple(self._records))

    def __len__(self) -> int:
        return len(self._records)

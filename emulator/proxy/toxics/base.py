"""What a toxic is: its settings (a frozen dataclass, units in the field names) plus one method.

A ``StreamToxic`` processes the chunks of one direction of one connection in ``pipe(stub)``; a ``ConnectToxic``
decides in ``admit(attempt)`` whether and when a new client connection reaches the upstream. Per-connection state
never lives on the toxic: it is on the stub (``stub.state``, from ``new_state()``), so one toxic serves every
connection and can be changed on live ones.
"""

from __future__ import annotations

import abc
from typing import TYPE_CHECKING, Any, ClassVar

from ..chunk import End

if TYPE_CHECKING:
    from ..attempt import ConnectAttempt
    from ..stub import ToxicStub


class StreamToxic(abc.ABC):
    __slots__ = ()
    kind: ClassVar[str]

    def new_state(self) -> Any:
        """Per-connection state kept on the stub across re-links (toxiproxy's StatefulToxic)."""
        return None

    @abc.abstractmethod
    async def pipe(self, stub: ToxicStub) -> None:
        """Move chunks from ``stub.read()`` to ``stub.write()``.

        Return when ``read`` (or a wait) reports an interrupt, after putting back with ``stub.unread`` any chunk
        still held: the chain is being re-linked and will run ``pipe`` again, or flush what is queued.
        End-of-stream chunks (``chunk.end``) must be passed on or dropped like data, and ``pipe`` keeps reading
        after them (a RST may follow a FIN).
        """


class ConnectToxic(abc.ABC):
    __slots__ = ()
    kind: ClassVar[str]

    @abc.abstractmethod
    async def admit(self, attempt: ConnectAttempt) -> None:
        """Return to let the connection through, wait to delay it, raise ``Refused`` to turn it away."""


Toxic = StreamToxic | ConnectToxic


class Refused(Exception):
    """A connect toxic turns a client away: the proxy closes the accepted connection with ``how``."""

    def __init__(self, how: End, reason: str):
        super().__init__(reason)
        self.how = how
        self.reason = reason


def check_non_negative(owner: object, **values: float | None) -> None:
    """Settings are validated where they are made, with a message that names the field and its unit."""
    for name, value in values.items():
        if value is not None and value < 0:
            raise ValueError(f"{type(owner).__name__}.{name} must be >= 0, not {value!r}")

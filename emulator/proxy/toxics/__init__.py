"""The toxics, one module each, and the table that maps their names (as in scenario files) to their classes."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ..errors import ProxyError
from .bandwidth import Bandwidth
from .base import ConnectToxic, Refused, StreamToxic, Toxic
from .cold_start import ColdStart
from .idle_drop import IdleDrop
from .latency import Latency
from .limit_connections import LimitConnections
from .noop import Noop
from .reset_peer import ResetPeer
from .slow_connect import SlowConnect
from .timeout import Timeout
from .while_frozen import WhileFrozen

TOXICS: dict[str, type[StreamToxic] | type[ConnectToxic]] = {
    cls.kind: cls
    for cls in (
        Noop,
        Latency,
        Bandwidth,
        ResetPeer,
        Timeout,
        IdleDrop,
        WhileFrozen,
        SlowConnect,
        ColdStart,
        LimitConnections,
    )
}


def make_toxic(kind: str, settings: Mapping[str, Any] | None = None) -> Toxic:
    """A toxic from its name and settings, e.g. ``make_toxic("latency", {"latency_ms": 50})``."""
    cls = TOXICS.get(kind)
    if cls is None:
        raise ProxyError(f"unknown toxic {kind!r}; known toxics: {', '.join(sorted(TOXICS))}")
    try:
        return cls(**dict(settings or {}))
    except (TypeError, ValueError) as exc:
        raise ProxyError(f"bad settings for toxic {kind!r}: {exc}") from exc


__all__ = [
    "TOXICS",
    "Bandwidth",
    "ColdStart",
    "ConnectToxic",
    "IdleDrop",
    "Latency",
    "LimitConnections",
    "Noop",
    "Refused",
    "ResetPeer",
    "SlowConnect",
    "StreamToxic",
    "Timeout",
    "Toxic",
    "WhileFrozen",
    "make_toxic",
]

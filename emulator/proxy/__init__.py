"""A freeze-aware fault proxy between functions and their databases, in the Shopify/toxiproxy mould."""

from .attempt import ConnectAttempt
from .chunk import Chunk, End
from .config import CLOSE_MODES, CloseMode, ProxyConfig
from .connection import ConnectionInfo
from .errors import ProxyError
from .events import EventKind, EventLog, ProxyEvent
from .proxy import Proxy
from .registry import DIRECTIONS, Direction, ToxicInfo
from .stub import ToxicStub
from .toxics import (
    TOXICS,
    Bandwidth,
    ColdStart,
    ConnectToxic,
    IdleDrop,
    Latency,
    LimitConnections,
    Noop,
    Refused,
    ResetPeer,
    SlowConnect,
    StreamToxic,
    Timeout,
    Toxic,
    WhileFrozen,
    make_toxic,
)
from .view import EnvironmentView, FreezeListener

__all__ = [
    "CLOSE_MODES",
    "DIRECTIONS",
    "TOXICS",
    "Bandwidth",
    "Chunk",
    "CloseMode",
    "ColdStart",
    "ConnectAttempt",
    "ConnectToxic",
    "ConnectionInfo",
    "Direction",
    "End",
    "EnvironmentView",
    "EventKind",
    "EventLog",
    "FreezeListener",
    "IdleDrop",
    "Latency",
    "LimitConnections",
    "Noop",
    "Proxy",
    "ProxyConfig",
    "ProxyError",
    "ProxyEvent",
    "Refused",
    "ResetPeer",
    "SlowConnect",
    "StreamToxic",
    "Timeout",
    "Toxic",
    "ToxicInfo",
    "ToxicStub",
    "WhileFrozen",
    "make_toxic",
]

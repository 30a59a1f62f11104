"""HTTP surfaces of lambda-freeze: the Runtime API, the Invoke API and the inspection API.

This package declares what it needs from the engine (``protocol``) and never imports ``emulator``.
"""

from .invoke import InvokeApiServer
from .protocol import (
    MAX_ASYNC_PAYLOAD_BYTES,
    MAX_RESPONSE_BYTES,
    MAX_STREAMED_RESPONSE_BYTES,
    MAX_SYNC_PAYLOAD_BYTES,
    ApiError,
    InvokeBackend,
    InvokeRequest,
    InvokeResult,
    NextEvent,
    ResponseChunks,
    ResponseSink,
    RuntimeBackend,
    StreamEnd,
)
from .runtime import RuntimeApiServer, RuntimeEndpoint

__all__ = [
    "MAX_ASYNC_PAYLOAD_BYTES",
    "MAX_RESPONSE_BYTES",
    "MAX_STREAMED_RESPONSE_BYTES",
    "MAX_SYNC_PAYLOAD_BYTES",
    "ApiError",
    "InvokeApiServer",
    "InvokeBackend",
    "InvokeRequest",
    "InvokeResult",
    "NextEvent",
    "ResponseChunks",
    "ResponseSink",
    "RuntimeApiServer",
    "RuntimeBackend",
    "RuntimeEndpoint",
    "StreamEnd",
]

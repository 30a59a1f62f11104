"""Socket options the proxy relies on: an abortive close (RST), no Nagle delay, and the kernel's segment counter."""

from __future__ import annotations

import asyncio
import socket
import struct
from typing import Any

_LINGER_ZERO = struct.pack("ii", 1, 0)
# struct tcp_info (linux/tcp.h): tcpi_segs_out and tcpi_segs_in are the two u32 at byte 136, since Linux 4.2.
_TCP_INFO_SEGS_OFFSET = 136
_TCP_INFO_LEN = _TCP_INFO_SEGS_OFFSET + 8


def _sock(transport: asyncio.BaseTransport) -> Any:
    return transport.get_extra_info("socket")


def linger_zero(transport: asyncio.BaseTransport) -> None:
    """Make the next close of this socket send a RST and discard unsent data, as a crashed or killed peer would."""
    sock = _sock(transport)
    if sock is not None:
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, _LINGER_ZERO)
        except OSError:
            pass  # already closed by the kernel: it has sent its own RST


def no_delay(transport: asyncio.BaseTransport) -> None:
    """Database protocols are request/response: Nagle's algorithm would add up to 40 ms per round trip."""
    sock = _sock(transport)
    if sock is not None and sock.family in (socket.AF_INET, socket.AF_INET6):
        try:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        except OSError:
            pass


def segments_in(transport: asyncio.BaseTransport | None) -> int | None:
    """Every TCP segment the kernel received on this socket, keepalive probes included (None if unknown).

    Keepalive probes never reach the application, yet they are what keeps a NAT mapping alive; this counter is the
    only place the proxy can see them.
    """
    if transport is None or not hasattr(socket, "TCP_INFO"):
        return None
    sock = _sock(transport)
    if sock is None:
        return None
    try:
        info = sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_INFO, _TCP_INFO_LEN)
    except OSError:
        return None
    if len(info) < _TCP_INFO_LEN:
        return None
    return int(struct.unpack_from("I", info, _TCP_INFO_SEGS_OFFSET + 4)[0])

"""Which local process holds the other end of a loopback TCP connection: the Linux kernel's sock_diag netlink
interface names the client socket's inode, and /proc/<pid>/fd names the processes that hold it.

SO_PEERCRED answers only for Unix sockets, and every runtime runs as the same user, so neither the peer's
credentials nor a secret in the environment (readable in /proc/<pid>/environ by any process of that user) tells
one environment's runtime from another's. The socket's owner does: the Runtime API admits a connection from another
environment's processes no more than Lambda's sandbox lets one environment reach another's Runtime API.
"""

from __future__ import annotations

import contextlib
import ipaddress
import os
import socket
import struct
from collections.abc import Iterable

_NETLINK_SOCK_DIAG = 4
_SOCK_DIAG_BY_FAMILY = 20
_NLM_F_REQUEST = 1
_NLMSG_ERROR = 2
_TCP_ESTABLISHED_AND_SYN = (1 << 1) | (1 << 2) | (1 << 3)  # ESTABLISHED, SYN_SENT, SYN_RECV
_NO_COOKIE = 0xFFFFFFFF
_HEADER = struct.Struct("=IHHII")  # nlmsghdr
_REQUEST = struct.Struct("=BBBBI")  # inet_diag_req_v2 up to its socket id
_INODE_OFFSET = _HEADER.size + 4 + 48 + 16  # inet_diag_msg: family..retrans, id, expires/rqueue/wqueue/uid


def _address(host: str, family: int) -> bytes:
    packed = ipaddress.ip_address(host.split("%", 1)[0]).packed
    return packed.ljust(16, b"\0") if family == socket.AF_INET else packed


def socket_inode(peer: tuple[str, int], local: tuple[str, int]) -> int | None:
    """The inode of the client socket of the connection from ``peer`` to ``local``, both on this host; None when
    the kernel knows no such socket (it closed meanwhile, or it is not local)."""
    family = socket.AF_INET6 if ":" in peer[0] else socket.AF_INET
    request = _REQUEST.pack(family, socket.IPPROTO_TCP, 0, 0, _TCP_ESTABLISHED_AND_SYN)
    # the client's socket: its source is the peer, its destination the server's local address
    request += struct.pack(">HH", peer[1], local[1]) + _address(peer[0], family) + _address(local[0], family)
    request += struct.pack("=III", 0, _NO_COOKIE, _NO_COOKIE)
    message = _HEADER.pack(_HEADER.size + len(request), _SOCK_DIAG_BY_FAMILY, _NLM_F_REQUEST, 1, 0) + request
    with socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, _NETLINK_SOCK_DIAG) as diag:
        diag.sendto(message, (0, 0))
        answer = diag.recv(8192)
    if len(answer) < _INODE_OFFSET + 4:
        return None
    _, kind, _, _, _ = _HEADER.unpack_from(answer)
    if kind == _NLMSG_ERROR:
        return None
    (inode,) = struct.unpack_from("=I", answer, _INODE_OFFSET)
    return inode or None


def held_by(inode: int, pids: Iterable[int]) -> bool:
    """Whether one of ``pids`` holds the socket ``inode`` open."""
    target = f"socket:[{inode}]"
    for pid in pids:
        base = f"/proc/{pid}/fd/"
        try:
            fds = os.listdir(base)
        except OSError:
            continue  # gone, or not ours to look at
        for fd in fds:
            with contextlib.suppress(OSError):
                if os.readlink(base + fd) == target:
                    return True
    return False

"""The embedded SQS/S3 endpoint's process: a moto server on a free loopback port, which prints its port, and ends
when its emulator does (the parent-death signal, and EOF on stdin should that signal be missed).

python -m emulator.sources.aws.moto_child
"""

from __future__ import annotations

import ctypes
import logging
import os
import signal
import sys
import threading


def _die_with_parent(parent_pid: int) -> None:
    ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL, 0, 0, 0)  # PR_SET_PDEATHSIG
    if os.getppid() != parent_pid:  # the emulator died before prctl took effect
        os._exit(1)


def _exit_on_eof() -> None:
    while sys.stdin.buffer.read(65536):
        pass
    os._exit(0)


def main() -> int:
    _die_with_parent(int(os.environ.get("LAMBDA_FREEZE_PARENT_PID", os.getppid())))
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C reaches the whole group: the emulator ends us itself
    logging.getLogger("werkzeug").setLevel(logging.ERROR)  # a line per request would drown the functions' logs
    from moto.server import ThreadedMotoServer

    from .moto_sqs import apply

    # LAMBDA_FREEZE_MOTO_AS_IS=1: moto exactly as released, to compare, or to rule the faster paths out.
    if os.environ.get("LAMBDA_FREEZE_MOTO_AS_IS") != "1":
        apply()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    port = server._server.server_port  # type: ignore[union-attr]  # moto names no accessor for a port of 0
    print(port, flush=True)
    threading.Thread(target=_exit_on_eof, daemon=True).start()
    threading.Event().wait()
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""The embedded SQS/S3 endpoint's process: a moto server on a free loopback port (moto's application, with the faster
SQS paths of moto_sqs and the keep-alive HTTP handling of moto_http), which prints its port, and ends when its
emulator does (the parent-death signal, and EOF on stdin should that signal be missed).

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
    from moto.moto_server.werkzeug_app import DomainDispatcherApplication, create_backend_app
    from moto.server import ThreadedMotoServer

    from .moto_http import keep_alive_server
    from .moto_sqs import apply

    # LAMBDA_FREEZE_MOTO_AS_IS=1: moto exactly as released (its server, its SQS), to compare, or to rule ours out.
    if os.environ.get("LAMBDA_FREEZE_MOTO_AS_IS") == "1":
        server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
        server.start()
        port = server._server.server_port  # type: ignore[union-attr]  # moto names no accessor for a port of 0
    else:
        apply()
        http = keep_alive_server(DomainDispatcherApplication(create_backend_app))
        port = http.server_port
        threading.Thread(target=http.serve_forever, name="moto http", daemon=True).start()
    print(port, flush=True)
    threading.Thread(target=_exit_on_eof, daemon=True).start()
    threading.Event().wait()
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""The floor under every invoke: a server that answers ``{"ok": true}`` to any request and does nothing else.

    python _floor_server.py          # aiohttp + uvloop, as the emulator serves its APIs
    python _floor_server.py --raw    # a bare uvloop protocol (Content-Length bodies only): HTTP without a framework

Prints ``floor: serving on http://127.0.0.1:PORT`` on stderr once it listens; stops on SIGTERM.
"""

from __future__ import annotations

import asyncio
import signal
import sys

import uvloop

BODY = b'{"ok": true}'
RAW_RESPONSE = b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n%s" % (len(BODY), BODY)


class RawProtocol(asyncio.Protocol):
    def __init__(self) -> None:
        self._buf = b""
        self._transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        buf = self._buf + data
        while True:
            end = buf.find(b"\r\n\r\n")
            if end < 0:
                break
            head = buf[:end].lower()
            at = head.find(b"\r\ncontent-length:")
            length = 0
            if at >= 0:
                eol = head.find(b"\r\n", at + 2)
                length = int(head[at + 17 : eol if eol >= 0 else len(head)])
            if len(buf) < end + 4 + length:
                break
            buf = buf[end + 4 + length :]
            assert self._transport is not None
            self._transport.write(RAW_RESPONSE)
        self._buf = buf


async def serve_raw(stop: asyncio.Event) -> None:
    loop = asyncio.get_running_loop()
    server = await loop.create_server(RawProtocol, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    print(f"floor: serving on http://127.0.0.1:{port}", file=sys.stderr, flush=True)
    await stop.wait()
    server.close()


async def serve_aiohttp(stop: asyncio.Event) -> None:
    from aiohttp import web

    async def hello(request: web.Request) -> web.Response:
        await request.read()
        return web.Response(body=BODY, content_type="application/json")

    app = web.Application()
    app.router.add_post("/{tail:.*}", hello)
    runner = web.AppRunner(app, handle_signals=False, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    print(f"floor: serving on http://127.0.0.1:{port}", file=sys.stderr, flush=True)
    await stop.wait()
    await runner.cleanup()


async def main(raw: bool) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    await (serve_raw(stop) if raw else serve_aiohttp(stop))


if __name__ == "__main__":
    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        runner.run(main("--raw" in sys.argv[1:]))

"""A server that talks to one client at a time, as some legacy systems do: a second client is
answered "busy" to everything it asks. It answers "pong" to "ping". Prints its port, then one line per event on stdout.

The server speaks first: it greets each connection with "hello", or "busy" when another client holds it. A client's
connect() returns as soon as the kernel has completed the handshake, before this program has accepted the connection
and judged it; only the greeting tells the client which it got. A client that does not wait for it is judged later,
by whatever holds the server then: the client it collided with may have gone in between.

    python one_client_server.py [--port 0]
"""

import argparse
import asyncio
import socket
import sys


class OneClientServer:
    def __init__(self) -> None:
        self.current: asyncio.StreamWriter | None = None

    def _current_gone(self) -> bool:
        """The current client may have gone (its FIN is already here) before its reader noticed."""
        if self.current is None:
            return True
        fileno = self.current.get_extra_info("socket").fileno()
        with socket.fromfd(fileno, socket.AF_INET, socket.SOCK_STREAM) as peek:  # a duplicate to peek through
            try:
                return peek.recv(1, socket.MSG_PEEK | socket.MSG_DONTWAIT) == b""
            except BlockingIOError:
                return False
            except OSError:
                return True

    async def serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        peer = writer.get_extra_info("peername")
        if not self._current_gone():
            print(f"busy {peer[1]}", flush=True)
            await self._busy(reader, writer)
            return
        self.current = writer
        print(f"connected {peer[1]}", flush=True)
        try:
            writer.write(b"hello\n")  # the greeting
            while line := await reader.readline():
                if line.strip() == b"ping":
                    writer.write(b"pong\n")
                    await writer.drain()
        except ConnectionError:
            pass
        finally:
            if self.current is writer:
                self.current = None
            print(f"disconnected {peer[1]}", flush=True)
            writer.close()

    async def _busy(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        """A client that came while another was served: greeted, and every request answered, with "busy"."""
        try:
            writer.write(b"busy\n")  # the greeting
            while await reader.readline():
                writer.write(b"busy\n")
                await writer.drain()
        except ConnectionError:
            pass
        finally:
            writer.close()


async def main(port: int) -> None:
    server = await asyncio.start_server(OneClientServer().serve, "127.0.0.1", port)
    print(f"port {server.sockets[0].getsockname()[1]}", flush=True)
    async with server:
        await server.serve_forever()


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, default=0)
    try:
        asyncio.run(main(parser.parse_args().port))
    except KeyboardInterrupt:
        sys.exit(0)

"""The pool's settings the suite had left open: recycling values randomised by ``recycle_jitter``, and an upstream
reached through the fault proxy, whose port lives as long as its environment."""

from __future__ import annotations

import socket
import socketserver
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

pytestmark = pytest.mark.timeout(60)


def test_each_environment_gets_its_own_idle_timeout_within_the_jitter(serve):
    # Measured inside the emulator (from the moment an environment is idle to its retirement, both on the timeline),
    # so what a loaded CI adds is only how late the loop runs a due timer, not any trip to a caller.
    idle_timeout_s, jitter, count = 0.3, 0.5, 6
    fn = serve("python/basic", idle_timeout_s=idle_timeout_s, recycle_jitter=jitter)
    with ThreadPoolExecutor(count) as pool:  # at the same time: one environment each
        answers = list(pool.map(lambda _: fn.invoke({"action": "sleep", "seconds": 1.0}, tail=False), range(count)))
    assert [a.payload for a in answers] == ["slept"] * count
    fn.wait_envs(lambda envs: envs == [])
    events = list(fn.emulator.emulator.timeline.events)
    idle_s = {}
    for n, event in enumerate(events):
        if event.kind == "retire":
            assert event.detail["reason"] == "idle timeout"
            idle_since = next(
                e for e in reversed(events[:n])
                if e.subject == event.subject and e.kind == "state" and e.detail["new"] == "ready"
            )
            idle_s[event.subject] = event.monotonic_s - idle_since.monotonic_s
    assert len(idle_s) == count
    low, high = idle_timeout_s * (1 - jitter), idle_timeout_s * (1 + jitter)
    # 0.3 s for a timer that a loaded loop runs late; a value made longer by a second or more still shows.
    assert all(low <= s < high + 0.3 for s in idle_s.values()), idle_s
    # Six draws from a 0.3 s wide range all within 30 ms of one another: about once in 20,000 runs.
    assert max(idle_s.values()) - min(idle_s.values()) > 0.03, idle_s


class _Echo(socketserver.BaseRequestHandler):
    def handle(self) -> None:
        while data := self.request.recv(65536):
            self.request.sendall(data)


@pytest.fixture
def echo_server() -> Iterator[tuple[str, int]]:
    server = socketserver.ThreadingTCPServer(("127.0.0.1", 0), _Echo)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield server.server_address[:2]
    finally:
        server.shutdown()
        server.server_close()


ECHO_FUNCTION = """\
import os, socket

def handler(event, context):
    address = (os.environ["ECHO_HOST"], int(os.environ["ECHO_PORT"]))
    with socket.create_connection(address, timeout=10) as connection:
        connection.sendall(event["send"].encode())
        return {"echo": connection.recv(100).decode(), "address": list(address)}
"""


def test_an_upstream_is_reached_through_a_port_of_the_environments_own_that_closes_with_it(serve, tmp_path: Path,
                                                                                        echo_server):
    code = tmp_path / "code"
    code.mkdir()
    (code / "app.py").write_text(ECHO_FUNCTION)
    host, port = echo_server
    fn = serve(str(code), upstreams={"ECHO": f"{host}:{port}"}, max_invocations=1)
    result = fn.invoke({"send": "hello"})
    assert result.payload["echo"] == "hello"
    proxy_host, proxy_port = result.payload["address"]
    assert proxy_port != port  # the proxy's port, not the server's
    env_id = next(e.subject for e in fn.emulator.emulator.timeline.events if e.kind == "spawn")
    # The proxy's records land on the timeline under the environment, with their kind as "event" and plain values.
    proxied = [e.detail for e in fn.emulator.emulator.timeline.events if e.kind == "proxy"]
    assert proxied and all(d["proxy"] == "fn/ECHO" for d in proxied)
    connects = [d for d in proxied if d["event"] == "connect"]
    assert connects, proxied
    assert all(isinstance(v, (str, int, float)) for d in proxied for v in d.values())
    assert {e.subject for e in fn.emulator.emulator.timeline.events if e.kind == "proxy"} == {env_id}
    fn.wait_envs(lambda envs: envs == [])  # recycled after its one invocation: its port is closed
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection((proxy_host, proxy_port), timeout=10).close()

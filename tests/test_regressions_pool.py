"""The pool's settings the suite had left open: recycling values randomised by ``recycle_jitter``, and an upstream
reached through the fault proxy, whose port lives as long as its environment."""

from __future__ import annotations

import itertools
import os
import socket
import socketserver
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from test_regressions_start import code_dir

from emulator import FunctionConfig

pytestmark = pytest.mark.timeout(60)


def test_each_environment_gets_its_own_idle_timeout_within_the_jitter(serve):
    # Measured inside the emulator (from the moment an environment is idle to its retirement, both on the timeline),
    # so what a loaded CI adds is only how late the loop runs a due timer, not any trip to a caller.
    idle_timeout_s, jitter, count = 1.0, 0.5, 6
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
    # 0.3 s for a timer that a loaded loop runs late; a value drawn from a range half a value higher still shows.
    assert all(low <= s < high + 0.3 for s in idle_s.values()), idle_s
    # Six draws from a 1 s wide range all within 0.1 s of one another: about once in 20,000 runs.
    assert max(idle_s.values()) - min(idle_s.values()) > 0.1, idle_s


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


def _timeline(fn) -> list:
    return list(fn.emulator.emulator.timeline.events)


def test_the_next_standby_is_parked_a_moment_after_the_environment_that_took_the_last_is_idle(serve):
    fn = serve("python/basic")
    parked = lambda emu: [e for e in emu.timeline.events if e.kind == "standby" and e.detail["event"] == "parked"]  # noqa: E731
    fn.wait_for(lambda emu: len(parked(emu)) == 1)
    fn.invoke({"action": "echo"})  # a cold start: it adopts the standby
    fn.wait_for(lambda emu: len(parked(emu)) == 2)
    events = _timeline(fn)
    first, second = (e for e in events if e.kind == "standby" and e.detail["event"] == "parked")
    adopter = next(e.detail["env_id"] for e in events if e.kind == "standby" and e.detail["event"] == "adopted")
    assert adopter == first.subject != second.subject
    idle = [e for e in events if e.subject == adopter and e.kind == "state" and e.detail["new"] == "ready"]
    # INIT's end, then the end of its invocation: the next standby waits for the second (its first answer given).
    assert len(idle) == 2 and idle[1].monotonic_s < second.monotonic_s
    # 10 ms after, plus the fork and the cgroups' first writes on a spawner thread; a loaded CI may add some
    # hundreds of ms, a standby made a second later still shows.
    assert second.monotonic_s - idle[1].monotonic_s < 0.8


def test_proactive_init_runs_at_most_twice_the_cores_at_once(serve):
    at_once = max(2, 2 * (os.cpu_count() or 1))
    fn = serve("python/slow_init", prewarm=at_once + 2, env={"INIT_SLEEP_S": "0.5"})
    fn.wait_envs(lambda envs: len(envs) == at_once + 2 and all(e["state"] == "frozen" for e in envs))
    initialising: set[str] = set()
    most = 0
    for event in _timeline(fn):
        if event.kind == "spawn":
            assert event.detail["reason"] == "prewarm"
            initialising.add(event.subject)
            most = max(most, len(initialising))
        elif event.kind == "state" and event.detail["old"] == "initializing":
            initialising.discard(event.subject)
    # The first ones start together (INIT takes 0.5 s: they all overlap); the others as each of those is done.
    assert most == at_once


def test_an_environment_retiring_beside_its_replacement_leaves_the_reserved_concurrency_to_others(serve):
    # Recycled after each invocation, the old environment waits for its replacement's INIT (1 s) before it stops;
    # meanwhile it takes nothing, so of the two reserved, only the replacement counts: the next caller is served by a
    # third environment, not throttled.
    fn = serve(
        "python/slow_init",
        reserved_concurrency=2,
        max_invocations=1,
        replace_before_retire=True,
        env={"INIT_SLEEP_S": "1.0"},
    )
    first = fn.invoke({})
    fn.wait_envs(lambda envs: len(envs) == 2 and sorted(e["state"] for e in envs) == ["frozen", "initializing"])
    second = fn.invoke({})
    assert second.function_error is None and second.payload["pid"] != first.payload["pid"]
    assert "Init Duration" in second.log


def test_a_function_that_cannot_be_built_answers_every_invoke_and_lets_its_standby_go(serve, tmp_path: Path):
    # Added to a running emulator (as the harness and the pytest plugin add functions), so its build happens at its
    # first cold start: that environment took the standby parked for it, which is let go, not left parked.
    fn = serve("python/basic")
    code = tmp_path / "broken"
    code.mkdir()
    (code / "app.py").write_text("def handler(event, context):\n    return 'built'\n")
    (code / "requirements.txt").write_text("./no-such-project\n")
    config = FunctionConfig(name="broken", code_dir=code, handler="app.handler", runtime="python3.11")

    async def add(emulator):
        emulator.add_function(config)

    fn.emulator.call(add)
    standby = lambda emu, event: [  # noqa: E731
        e for e in emu.timeline.events if e.kind == "standby" and e.detail["function"] == "broken"
        and e.detail["event"] == event
    ]
    fn.wait_for(lambda emu: standby(emu, "parked"))
    for _ in range(2):  # the build is not tried again: every cold start fails the same way, at once
        result = fn.invoke({}, function_name="broken")
        assert result.function_error == "Unhandled"
        assert result.payload["errorType"] == "Runtime.InvalidEntrypoint"
        assert result.payload["errorMessage"].startswith("pip could not install"), result.payload
    (parked,) = (e.subject for e in standby(fn.emulator.emulator, "parked")[:1])
    fn.wait_for(lambda emu: any(e.subject == parked for e in standby(emu, "let go")), timeout_s=10)
    fn.wait_for(lambda emu: not emu.functions["broken"].environments)
    assert fn.invoke({"action": "echo"}).function_error is None  # the other function is served on


ANSWERS_THEN_EXITS = """\
#!/usr/bin/env python3
import json, os, time, urllib.request

API = f"http://{os.environ['AWS_LAMBDA_RUNTIME_API']}/2018-06-01/runtime"
with urllib.request.urlopen(f"{API}/invocation/next") as event:
    request_id = event.headers["Lambda-Runtime-Aws-Request-Id"]
answer = json.dumps({"pid": os.getpid()}).encode()
urllib.request.urlopen(urllib.request.Request(f"{API}/invocation/{request_id}/response", data=answer)).read()
time.sleep(0.5)  # wait-ok: answered and not back in next: an invocation sent now waits for this environment
os._exit(1)
"""


def test_an_invocation_waiting_for_a_runtime_that_exits_instead_of_coming_back_runs_elsewhere(serve, tmp_path):
    fn = serve(str(code_dir(tmp_path, ANSWERS_THEN_EXITS, 0o755)), runtime="provided", handler="x")
    first = fn.invoke({}, tail=False)  # answered at once (a tail would wait for the REPORT: once the runtime exits)
    second = fn.invoke({})  # assigned to the environment that answered, which then exits: placed elsewhere
    assert first.function_error is None and second.function_error is None, second.payload
    assert second.payload["pid"] != first.payload["pid"]
    assert "Init Duration" in second.log


def test_a_function_removed_while_a_cold_start_runs_init_tells_its_caller_it_is_shutting_down(serve):
    fn = serve("python/slow_init", env={"INIT_SLEEP_S": "5"})
    with ThreadPoolExecutor(1) as pool:
        waiting = pool.submit(fn.invoke, {}, tail=False)
        fn.wait_envs(lambda envs: [e["state"] for e in envs] == ["initializing"])

        async def remove(emulator):
            await emulator.remove_function("fn")

        fn.emulator.call(remove)
        result = waiting.result(timeout=30)
    assert result.function_error == "Unhandled"
    assert result.payload["errorType"] == "ServiceException", result.payload  # not a throttle: nothing will run it
    assert result.payload["errorMessage"] == "the emulator is shutting down"


def test_max_invocations_above_256_recycles_after_exactly_that_many(serve):
    # Counts above 256 are ints that Python does not share: compared by identity, they would never match.
    fn = serve("python/basic", max_invocations=300)
    pids = {fn.invoke({"action": "pid"}, tail=False).payload for _ in range(300)}
    assert len(pids) == 1
    fn.wait_envs(lambda envs: envs == [], timeout_s=10)  # retired after its 300th
    assert fn.invoke({"action": "pid"}, tail=False).payload not in pids


def test_a_removed_function_stops_its_idle_environments(serve):
    fn = serve("python/basic")
    with ThreadPoolExecutor(2) as pool:  # two environments, then both idle (frozen), nothing under way
        list(pool.map(lambda _: fn.invoke({"action": "sleep", "seconds": 0.5}, tail=False), range(2)))
    fn.wait_envs(lambda envs: [e["state"] for e in envs] == ["frozen", "frozen"])
    ids = {e["id"] for e in fn.environments()}

    async def remove(emulator):
        await emulator.remove_function("fn")

    fn.emulator.call(remove)
    stopped = {e.subject for e in fn.emulator.emulator.timeline.events if e.kind == "stopped"}
    assert stopped == ids  # stopped by the time the removal returns


def test_random_placement_takes_either_idle_environment(serve):
    fn = serve("python/basic", placement="random")
    with ThreadPoolExecutor(2) as pool:  # two environments, both idle after
        list(pool.map(lambda _: fn.invoke({"action": "sleep", "seconds": 0.5}, tail=False), range(2)))
    fn.wait_envs(lambda envs: len(envs) == 2 and all(e["state"] == "frozen" for e in envs))
    pids = [fn.invoke({"action": "pid"}, tail=False).payload for _ in range(24)]
    assert len(set(pids)) == 2  # not always the most recently idle (mru)
    # nor always the least recently idle (lru alternates): 24 fair draws do so about once in four million runs
    assert any(a == b for a, b in itertools.pairwise(pids))


def test_proactive_init_leaves_the_reserved_concurrency_to_invocations_that_came_first(serve):
    # Proactive INIT runs in waves (twice the cores at once). An invocation that arrives while the first wave is in
    # INIT finds no idle environment and starts its own; the later waves then take only what the reserved
    # concurrency has left: the function never has more live environments than it reserved.
    at_once = max(2, 2 * (os.cpu_count() or 1))
    reserved = at_once + 1
    fn = serve("python/slow_init", prewarm=reserved, reserved_concurrency=reserved, env={"INIT_SLEEP_S": "2"})
    answer = fn.invoke({}, tail=False)  # while the first wave is in INIT
    assert answer.payload["ok"] is True
    fn.wait_envs(lambda envs: len(envs) >= reserved and all(e["state"] == "frozen" for e in envs))
    spawned = [e.detail.get("reason") for e in _timeline(fn) if e.kind == "spawn"]
    assert len(fn.environments()) == reserved and len(spawned) == reserved, spawned
    assert spawned.count("prewarm") == at_once  # the last wave's one was the invocation's


ANSWERS_THEN_LINGERS = """\
#!/usr/bin/env python3
import json, os, time, urllib.request

API = f"http://{os.environ['AWS_LAMBDA_RUNTIME_API']}/2018-06-01/runtime"
while True:
    with urllib.request.urlopen(f"{API}/invocation/next") as event:
        request_id = event.headers["Lambda-Runtime-Aws-Request-Id"]
    answer = json.dumps({"pid": os.getpid()}).encode()
    urllib.request.urlopen(urllib.request.Request(f"{API}/invocation/{request_id}/response", data=answer)).read()
    time.sleep(4)  # wait-ok: answered, and back in next only long after the wait for it has passed
"""


def test_an_invocation_waits_a_second_for_a_runtime_that_answered_then_runs_elsewhere(serve, tmp_path):
    fn = serve(str(code_dir(tmp_path, ANSWERS_THEN_LINGERS, 0o755)), runtime="provided", handler="x")
    first = fn.invoke({}, tail=False)  # answered at once; its runtime comes back to `next` 4 s later
    sent = time.monotonic()
    second = fn.invoke({}, tail=False)  # waits for the environment that answered, as Lambda does for a moment
    waited_s = time.monotonic() - sent
    assert first.function_error is None and second.function_error is None, second.payload
    assert second.payload["pid"] != first.payload["pid"]  # given back after the wait: a new environment ran it
    # the wait is 1 s from the answer (a moment before `sent`), then the new environment's cold start (~0.2 s)
    assert 0.8 <= waited_s < 1.8, f"answered {waited_s:.2f} s after it was sent"

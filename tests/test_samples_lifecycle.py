"""Samples about the environments' lifecycle: INIT on environments never invoked, and the relay consumer that
drains a queue by invoking itself asynchronously."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

pytestmark = pytest.mark.timeout(120)

SAMPLES = Path(__file__).parent.parent / "samples/python"
RUNS = 5


class ServerLog:
    """The lines the one-client server printed (``connected <port>``, ``busy <port>``, ``disconnected <port>``)."""

    def __init__(self) -> None:
        self.lines: list[str] = []
        self._changed = threading.Condition()

    def add(self, line: str) -> None:
        with self._changed:
            self.lines.append(line)
            self._changed.notify_all()

    def wait_since(self, start: int, count: int, timeout_s: float = 30.0) -> list[str]:
        """The lines printed since line ``start``, once there are at least ``count`` of them."""
        with self._changed:
            arrived = self._changed.wait_for(lambda: len(self.lines) - start >= count, timeout=timeout_s)
            assert arrived, f"the server printed {self.lines[start:]}, expected {count} lines"
            return self.lines[start:]


@pytest.fixture
def one_client_server() -> Iterator[tuple[str, ServerLog]]:
    """The sample's one-client server on a free port; yields its address and what it prints."""
    proc = subprocess.Popen(
        [sys.executable, str(SAMPLES / "init_side_effect/one_client_server.py")],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None
    port = proc.stdout.readline().split()[1]
    server_log = ServerLog()
    stdout = proc.stdout

    def read() -> None:
        for line in stdout:
            server_log.add(line.strip())

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    try:
        yield f"127.0.0.1:{port}", server_log
    finally:
        proc.terminate()
        proc.wait(timeout=10)
        reader.join(timeout=10)
        stdout.close()


def lifecycle(lambda_freeze, variant: str, address: str):
    return lambda_freeze.function(
        SAMPLES / f"init_side_effect/{variant}",
        env={"SERVER_ADDR": address},
        reserved_concurrency=1,
        max_invocations=2,
        replace_before_retire=True,
    )


def test_init_side_effect_on_a_replacement_breaks_the_function(lambda_freeze, one_client_server):
    address, server = one_client_server
    for _ in range(RUNS):
        start = len(server.lines)
        fn = lifecycle(lambda_freeze, "broken", address)
        assert [fn.invoke({}).payload for _ in range(2)] == [{"answer": "pong"}] * 2
        # The second invocation retired the environment: a replacement ran INIT beside it, then it left.
        (old,) = [env["id"] for env in fn.environments() if env["invocations"] == 2]
        fn.wait_for(lambda envs, old=old: len(envs) == 1 and envs[0]["id"] != old and envs[0]["state"] == "frozen")
        third = fn.invoke({})
        assert "Init Duration" not in third.log  # the replacement was initialised before it was invoked
        # The replacement's INIT met the old environment on the server, which held it until that INIT was over.
        events = server.wait_since(start, 3)
        assert [event.split()[0] for event in events] == ["connected", "busy", "disconnected"], events
        assert events[0].split()[1] == events[2].split()[1] != events[1].split()[1], events
        assert third.error_type == "ConnectionError", (third.payload, events, fn.environments())
        assert third.error_message == "server answered 'busy' instead of 'pong'"
        fn.stop()  # the replacement lets go of the server before the next run


def test_init_side_effect_fixed_connects_in_the_handler(lambda_freeze, one_client_server):
    address, server = one_client_server
    for _ in range(RUNS):
        start = len(server.lines)
        fn = lifecycle(lambda_freeze, "fixed", address)
        assert [fn.invoke({}).payload for _ in range(2)] == [{"answer": "pong"}] * 2
        (old,) = [env["id"] for env in fn.environments() if env["invocations"] == 2]
        fn.wait_for(lambda envs, old=old: len(envs) == 1 and envs[0]["id"] != old and envs[0]["state"] == "frozen")
        third = fn.invoke({})
        assert "Init Duration" not in third.log
        assert third.ok, (third.payload, server.lines[start:], fn.environments())
        assert third.payload == {"answer": "pong"}
        events = server.wait_since(start, 6)  # each invocation connected and left; INIT took nothing
        assert sorted(event.split()[0] for event in events) == ["connected"] * 3 + ["disconnected"] * 3, events
        fn.stop()


def test_relay_consumer_drains_the_queue(lambda_freeze, lambda_freeze_postgres):
    db = lambda_freeze_postgres()
    table = f"queue_{db.user}"
    import asyncpg

    async def fill() -> None:
        conn = await asyncpg.connect(host=db.host, port=db.port, user=db.user, database=db.database)
        try:
            await conn.execute(f"CREATE TABLE {table} (id serial PRIMARY KEY, done_by text)")
            await conn.execute(f"INSERT INTO {table} (done_by) SELECT NULL FROM generate_series(1, 45)")
        finally:
            await conn.close()

    async def processed() -> dict[str, int]:
        conn = await asyncpg.connect(host=db.host, port=db.port, user=db.user, database=db.database)
        try:
            rows = await conn.fetch(f"SELECT done_by, count(*) AS n FROM {table} GROUP BY done_by")
            return {row["done_by"]: row["n"] for row in rows}
        finally:
            await conn.close()

    asyncio.run(fill())
    fn = lambda_freeze.function(
        SAMPLES / "relay_consumer",
        env={**db.env(), "QUEUE_TABLE": table, "BATCH_SIZE": "10"},
        reserved_concurrency=1,
        timeout_s=10,
    )
    first = fn.invoke_async({"start": True})
    fn.wait_async(lambda status: status["delivered"] == 5)
    batches = asyncio.run(processed())
    assert None not in batches  # the queue is drained
    assert sorted(batches.values()) == [5, 10, 10, 10, 10]
    assert first in batches
    handed = [line for line in fn.logs if line.startswith("relay: handed over to ")]
    assert len(handed) == 4  # the chain: each invocation queued the next
    assert {line.split()[-1] for line in handed} == set(batches) - {first}
    assert fn.async_status()["failed"] == 0

"""The Sequelize guide's Lambda races ("Using sequelize in AWS Lambda"), with real sequelize 6 and mysql2 under the
real aws-lambda-ric, against the real MariaDB: each reproduction five times, its outcome asserted every time, frozen
and, where freezing is what makes the difference, unfrozen. The rates over more runs: benchmarks/sequelize_races.py.
"""

from __future__ import annotations

import hashlib
import re
import time
from pathlib import Path

import pytest

from conftest import require
from emulator.engine import clock, node_ric
from emulator.errors import ConfigError, LambdaFreezeError
from emulator.proxy import Latency, Timeout

pytestmark = pytest.mark.timeout(300)

SAMPLES = Path(__file__).parent.parent / "samples/node/sequelize"
INSTALL_COMMAND = "samples/node/install.sh"
RUNS = 5
RUNTIME = "nodejs20.x"
HANDSHAKE_LATENCY_MS = 200  # each server packet of the handshake arrives this late: the handshake outlives the handler
ACQUIRE_MS = 3000  # the samples' pool.acquire
CONNECT_TIMEOUT_MS = 5000  # the samples' mysql2 connectTimeout
EPIPE = "This socket has been ended by the other party"
CONNECTION_LOST = "Connection lost: The server closed the connection."
CODES = {EPIPE: "EPIPE", CONNECTION_LOST: "PROTOCOL_CONNECTION_LOST"}


def _problem() -> str | None:
    lock = SAMPLES / "package-lock.json"
    stamp = SAMPLES / "node_modules/.lambda-freeze-lock.sha256"
    if not stamp.is_file():
        return f"the Sequelize sample's node_modules is not installed: run `{INSTALL_COMMAND}`"
    if stamp.read_text().strip() != hashlib.sha256(lock.read_bytes()).hexdigest():
        return f"the Sequelize sample's node_modules is not that of its package-lock.json: run `{INSTALL_COMMAND}`"
    try:
        node_ric.command(RUNTIME, SAMPLES, "counter/index.handler")
    except ConfigError as exc:
        return exc.message  # names `lambda-freeze install-node-ric`
    return None


@pytest.fixture
def sequelize_sample() -> Path:
    """The sample project, its node_modules installed from its lock; skips locally, fails under CI=true, if not."""
    problem = _problem()
    require(problem is None, str(problem))
    return SAMPLES


def through_proxy(db) -> dict[str, str]:
    """The login's variables without host and port: the emulator points DB_HOST/DB_PORT at the proxy."""
    return {k: v for k, v in db.env().items() if k not in ("DB_HOST", "DB_PORT")}


def upstream(db, close: str = "mirror") -> dict[str, str]:
    return {"DB": f"{db.host}:{db.port} close={close}"}


def section(lines: list[str], start: str, end: str) -> list[str]:
    """The lines after the one that starts with ``start``, up to the first that starts with ``end``."""
    first = next(i for i, line in enumerate(lines) if line.startswith(start))
    last = next(i for i, line in enumerate(lines) if i > first and line.startswith(end))
    return lines[first + 1 : last]


def cold(result) -> bool:
    return "Init Duration" in result.log.splitlines()[-1]


# ------------------------------------------------------------------------------ 1. the guide's counter example
@pytest.mark.parametrize("freezer", ["auto", "none"])
def test_counter_slow_timer_fires_in_the_next_invocation(lambda_freeze, sequelize_sample, freezer):
    for _ in range(RUNS):
        fn = lambda_freeze.function(sequelize_sample, "counter/index.handler", runtime=RUNTIME, freezer=freezer)
        first = fn.invoke({})
        assert first.payload == 1
        fn.stay_frozen(3.0)  # the guide's "wait 3 seconds and invoke the Lambda again"
        second = fn.invoke({})
        assert second.payload == 3  # the slow timer of the first counted too, frozen or not
        slow = re.compile(
            rf"\t{first.request_id}\tINFO\tSlow timeout invoked\. Request id: {first.request_id} "
            r"\| Elapsed ms: (\d+)$"
        )
        fast = f"\t{second.request_id}\tINFO\tFast timeout invoked. Request id: {second.request_id} | Elapsed ms: "
        lines = second.log.splitlines()
        (fast_at,) = [i for i, line in enumerate(lines) if fast in line]
        if freezer == "none":
            assert not any(slow.search(line) for line in lines)
            # It fired between the invocations, on time.
            between = section(fn.logs, f"REPORT RequestId: {first.request_id}", f"START RequestId: {second.request_id}")
            (elapsed,) = [int(m[1]) for line in between if (m := slow.search(line))]
            assert 1000 <= elapsed < 2500  # on its own time during the 3 s idle period, with room for a loaded CI
        else:
            # Frozen, it fired on thaw: in the second invocation's own log, before that invocation's fast timer.
            ((slow_at, elapsed),) = [(i, int(m[1])) for i, line in enumerate(lines) if (m := slow.search(line))]
            assert slow_at < fast_at
            assert elapsed >= 3000


SLOW_TIMER_MS = 600_000  # a production-like timer: a cache refresh, a metrics flush
VIRTUAL_GAP_S = 900.0  # 15 minutes frozen, virtually
WALL_BUDGET_S = 5.0  # the bound on a virtual reproduction: the freeze and the invocation that meets it


def _virtual_clock() -> None:
    try:
        clock.preload_library()
    except LambdaFreezeError as exc:
        require(False, exc.message)


def test_counter_with_a_ten_minute_timer_fires_in_the_next_invocation_after_a_virtual_freeze(
    lambda_freeze, sequelize_sample
):
    """The same race with production's timer: a 10-minute slow timer and a 15-minute freeze, in virtual time. On
    thaw the timer has expired and fires first, in the second invocation, with the first one's request id."""
    _virtual_clock()
    for _ in range(RUNS):
        fn = lambda_freeze.function(
            sequelize_sample,
            "counter/index.handler",
            runtime=RUNTIME,
            virtual_time=True,
            env={"SLOW_TIMEOUT_MS": str(SLOW_TIMER_MS)},
        )
        first = fn.invoke({})
        assert first.payload == 1
        started = time.monotonic()
        fn.stay_frozen(VIRTUAL_GAP_S, virtual=True)
        second = fn.invoke({})
        elapsed_s = time.monotonic() - started
        assert second.payload == 3  # the slow timer of the first counted in the second, as in the real-time run
        slow = re.compile(
            rf"\t{first.request_id}\tINFO\tSlow timeout invoked\. Request id: {first.request_id} "
            r"\| Elapsed ms: (\d+)$"
        )
        lines = second.log.splitlines()
        ((slow_at, elapsed_ms),) = [(i, int(m[1])) for i, line in enumerate(lines) if (m := slow.search(line))]
        fast = f"Fast timeout invoked. Request id: {second.request_id}"
        (fast_at,) = [i for i, line in enumerate(lines) if fast in line]
        assert slow_at < fast_at
        # It fired on thaw, 15 minutes after it was set (the gap plus the real time of a loaded machine).
        assert VIRTUAL_GAP_S * 1000 <= elapsed_ms < (VIRTUAL_GAP_S + WALL_BUDGET_S) * 1000
        assert sum(bool(slow.search(line)) for line in fn.logs) == 1  # there only: not between the invocations
        assert elapsed_s < WALL_BUDGET_S, elapsed_s


@pytest.mark.parametrize("virtual", [False, True], ids=["real-time", "virtual"])
def test_counter_fixed_leaves_nothing_for_the_next_invocation(lambda_freeze, sequelize_sample, virtual):
    """The fix cancels the pending timer when the handler answers: after the guide's 3 s wait, and after a 15-minute
    virtual freeze of the 10-minute timer, the second invocation counts only itself and logs only its own id."""
    if virtual:
        _virtual_clock()
    for _ in range(RUNS):
        fn = lambda_freeze.function(
            sequelize_sample,
            "counter_fixed/index.handler",
            runtime=RUNTIME,
            virtual_time=virtual,
            env={"SLOW_TIMEOUT_MS": str(SLOW_TIMER_MS)} if virtual else {},
        )
        first = fn.invoke({})
        assert first.payload == 1
        started = time.monotonic()
        if virtual:
            fn.stay_frozen(VIRTUAL_GAP_S, virtual=True)
        else:
            fn.stay_frozen(3.0)  # wait-ok: the guide's "wait 3 seconds and invoke the Lambda again"
        second = fn.invoke({})
        assert second.payload == 2
        assert first.request_id not in second.log
        assert not any("Slow timeout invoked" in line for line in fn.logs)
        if virtual:
            assert time.monotonic() - started < WALL_BUDGET_S


# ------------------------------------------------------------- 2. pool {min: 1, max: 1}, the server closes meanwhile
def stale_pool(lambda_freeze, sample: Path, db, close: str, freezer: str = "auto"):
    """The {min: 1, max: 1} pool sample, its database reached through the fault proxy with ``close``."""
    return lambda_freeze.function(
        sample,
        "stale_pool/index.handler",
        runtime=RUNTIME,
        freezer=freezer,
        env=through_proxy(db),
        upstreams=upstream(db, close),
        timeout_s=5,
    )


@pytest.mark.parametrize("freezer", ["auto", "none"])
def test_stale_pool_with_the_servers_close_as_a_fin(lambda_freeze, lambda_freeze_mysql, sequelize_sample, freezer):
    """Frozen, the pool learns of the close only on thaw, as the next event arrives. Which of three things comes first
    decides the outcome: Node reading the FIN, the socket's `close` about a millisecond later, the next event. Event
    between the two: the pool hands out the half-closed connection (EPIPE, the guide's failure); event first: the
    query is sent into the closed connection (PROTOCOL_CONNECTION_LOST); event last: a fresh connection. The order
    is a race between the emulator's hand-over of the event and Node's event loop (samples/node/sequelize/stale_pool/
    README.md; rates: benchmarks/sequelize_races.py), so this asserts what holds on every run: frozen, nothing
    happened until the thaw and the outcome is one of those three; unfrozen, the pool replaced the connection between
    the invocations."""
    db = lambda_freeze_mysql(wait_timeout_s=1)
    for _ in range(RUNS):
        fn = stale_pool(lambda_freeze, sequelize_sample, db, "fin", freezer)
        first = fn.invoke({})
        assert first.ok, first.payload
        # Idle 1 s, then closed by the server; 1.5 s: an unfrozen pool's replacement is 0.5 s old when used.
        fn.stay_frozen(1.5)
        events = fn.faults("DB").events()
        assert any(e["kind"] == "close" and e.get("by") == "upstream" and e.get("how") == "rst" for e in events)
        assert any(e["kind"] == "close" and e.get("by") == "proxy" and e.get("how") == "fin" for e in events)
        connected = sum(e["kind"] == "connect" for e in events)
        second = fn.invoke({})
        if freezer == "none":
            assert connected == 3  # the version probe, the pooled connection, and its replacement (min: 1)
            assert second.ok, second.payload
            assert second.payload["connectionId"] != first.payload["connectionId"]
            continue
        assert connected == 2  # frozen: nothing happened until the thaw
        if second.ok:
            assert second.payload["connectionId"] != first.payload["connectionId"]
            continue
        assert second.error_type == "SequelizeDatabaseError", second.payload
        assert second.error_message in CODES, second.payload
        assert f'"code":"{CODES[second.error_message]}"' in second.log


def test_stale_pool_with_the_servers_rst_survives(lambda_freeze, lambda_freeze_mysql, sequelize_sample):
    """MariaDB closes an idle connection with a RST: passed on as a RST, Node reads ECONNRESET on thaw, the socket is
    destroyed at once, and the pool replaces the connection. Almost always before the next event is handled (19 and
    20 of 20 in the benchmark); when the event comes first, the query is written into the reset connection."""
    db = lambda_freeze_mysql(wait_timeout_s=1)
    for _ in range(RUNS):
        fn = stale_pool(lambda_freeze, sequelize_sample, db, "mirror")
        first = fn.invoke({})
        assert first.ok, first.payload
        fn.stay_frozen(1.5)
        events = fn.faults("DB").events()
        assert any(e["kind"] == "close" and e.get("by") == "proxy" and e.get("how") == "rst" for e in events)
        second = fn.invoke({})
        if second.ok:
            assert second.payload["connectionId"] != first.payload["connectionId"]
        else:
            assert (second.error_type, second.error_message) == ("SequelizeDatabaseError", "write ECONNRESET")


# ----------------------------------------------------------------------- 3. an event loop that never empties
def test_event_loop_never_empties(lambda_freeze, lambda_freeze_mysql, sequelize_sample):
    db = lambda_freeze_mysql()
    for _ in range(RUNS):
        fn = lambda_freeze.function(
            sequelize_sample, "never_empty/index.handler", runtime=RUNTIME, env=db.env(), timeout_s=2
        )
        for _ in range(2):
            result = fn.invoke({})
            # The callback was called with the result, but the runtime waits for an empty event loop: in vain.
            assert result.error_type == "Sandbox.Timedout", result.payload
            assert result.error_message.endswith("Task timed out after 2.00 seconds")
            assert result.log.startswith(f"INIT_START Runtime Version: {RUNTIME}")  # each one a fresh INIT
            assert cold(result)


# ------------------------------------------------------------- 4. timers of one invocation striking the next
def floating(lambda_freeze, sample: Path, db, handler: str, freezer: str):
    return lambda_freeze.function(
        sample,
        f"floating_query/{handler}",
        runtime=RUNTIME,
        freezer=freezer,
        env=through_proxy(db),
        upstreams=upstream(db),
        timeout_s=10,
    )


def failed_line(request_id: str, error: str) -> str:
    return f"\tINFO\tquery of {request_id} failed: {error}"


@pytest.mark.parametrize("freezer", ["auto", "none"])
def test_acquire_timeout_strikes_the_next_invocation(lambda_freeze, lambda_freeze_mysql, sequelize_sample, freezer):
    """(a) The query's connection is mid-handshake when the handler returns; past `acquire` ms later, on thaw, the
    pool's acquire timer fires before the socket is read."""
    db = lambda_freeze_mysql()
    for _ in range(RUNS):
        fn = floating(lambda_freeze, sequelize_sample, db, "index.handler", freezer)
        fn.faults("DB").add("handshake", Latency(latency_ms=HANDSHAKE_LATENCY_MS), direction="downstream")
        first = fn.invoke({})
        assert first.ok, first.payload
        fn.stay_frozen(ACQUIRE_MS / 1000 + 0.5)
        second = fn.invoke({"wait": True})
        assert second.ok, second.payload  # it gets the connection the first query was waiting for
        timed_out = failed_line(first.request_id, "SequelizeConnectionAcquireTimeoutError: Operation timeout")
        if freezer == "none":
            # The handshake finished long before `acquire` ms, between the invocations.
            assert first.request_id not in second.log
            between = section(fn.logs, f"REPORT RequestId: {first.request_id}", f"START RequestId: {second.request_id}")
            assert any(f"\tINFO\tquery of {first.request_id} returned connection " in line for line in between)
        else:
            # Frozen, it fired on thaw, in the second invocation, which then got the connection.
            assert timed_out in second.log
            assert f"query of {first.request_id} returned" not in "\n".join(fn.logs)


@pytest.mark.parametrize("freezer", ["auto", "none"])
def test_unhandled_rejection_kills_the_next_invocation(lambda_freeze, lambda_freeze_mysql, sequelize_sample, freezer):
    """(b) The same query without a .catch: on thaw its rejection is unhandled, the runtime client reports it and
    exits, and the invocation it was handed fails; the one after starts a new environment. Unfrozen, the handshake
    finishes between the invocations and nothing is rejected."""
    db = lambda_freeze_mysql()
    for _ in range(RUNS):
        fn = floating(lambda_freeze, sequelize_sample, db, "index.uncaught", freezer)
        fn.faults("DB").add("handshake", Latency(latency_ms=HANDSHAKE_LATENCY_MS), direction="downstream")
        first = fn.invoke({})
        assert first.ok, first.payload
        fn.stay_frozen(ACQUIRE_MS / 1000 + 0.5)
        second = fn.invoke({})
        third = fn.invoke({})
        # both outcomes in the message: a failure shows which invocation the rejection landed in
        assert third.ok, (second.error_type, second.payload, third.payload, third.log)
        if freezer == "none":
            assert second.ok, second.payload  # the handshake finished between the invocations: nothing rejected
            assert not cold(second) and not cold(third)
            continue
        assert second.error_type == "Runtime.ExitError", second.payload
        # The client posts the error (for the first invocation's request id: refused) and exits with 128, or, when
        # its native `next` of the second invocation is still in flight on another thread, crashes: same outcome.
        assert second.error_message in (
            f"RequestId: {second.request_id} Error: Runtime exited with error: exit status 128",
            f"RequestId: {second.request_id} Error: Runtime exited with error: signal: segmentation fault",
        )
        assert f"\t{first.request_id}\tERROR\tUnhandled Promise Rejection \t" in second.log
        assert (
            '"errorType":"Runtime.UnhandledPromiseRejection","errorMessage":'
            '"SequelizeConnectionAcquireTimeoutError: Operation timeout"' in second.log
        )
        assert cold(third)


@pytest.mark.parametrize("freezer", ["auto", "none"])
def test_connect_timeout_strikes_the_next_invocation(lambda_freeze, lambda_freeze_mysql, sequelize_sample, freezer):
    """(c) The guide's ETIMEDOUT: the network drops the connection the first invocation opened (a blackhole: its
    handshake never arrives). Between `acquire` and `connectTimeout` ms later, the second invocation's query waits
    for that connection and fails with mysql2's connect timeout. Frozen, the first query's acquire timeout lands in
    the second invocation too; unfrozen, it landed between the two."""
    db = lambda_freeze_mysql()
    for _ in range(RUNS):
        fn = floating(lambda_freeze, sequelize_sample, db, "index.handler", freezer)
        fn.faults("DB").add("blackhole", Timeout(timeout_ms=0), direction="downstream")
        first = fn.invoke({})
        assert first.ok, first.payload
        fn.stay_frozen((ACQUIRE_MS + CONNECT_TIMEOUT_MS) / 2000)
        fn.faults("DB").remove("blackhole")  # connections made from now on are fine; the first one is lost
        second = fn.invoke({"wait": True})
        assert second.error_type == "SequelizeConnectionError", second.payload
        assert second.error_message == "connect ETIMEDOUT"
        timed_out = failed_line(first.request_id, "SequelizeConnectionAcquireTimeoutError: Operation timeout")
        between = section(fn.logs, f"REPORT RequestId: {first.request_id}", f"START RequestId: {second.request_id}")
        if freezer == "none":
            assert any(timed_out in line for line in between)
            assert timed_out not in second.log
        else:
            assert not any(timed_out in line for line in between)
            assert timed_out in second.log


# ------------------------------------------------------------------------- 5. the guide's recommended configuration
def recommended(lambda_freeze, sample: Path, db, handler: str = "index.handler", **settings):
    return lambda_freeze.function(
        sample,
        f"recommended/{handler}",
        runtime=RUNTIME,
        env={**through_proxy(db), "FUNCTION_TIMEOUT_MS": "10000"},
        timeout_s=10,
        **settings,
    )


def test_recommended_with_the_servers_close_as_a_fin(lambda_freeze, lambda_freeze_mysql, sequelize_sample):
    db = lambda_freeze_mysql(wait_timeout_s=1)
    for _ in range(RUNS):
        fn = recommended(lambda_freeze, sequelize_sample, db, upstreams=upstream(db, "fin"))
        first = fn.invoke({"wait": True})
        assert first.ok, first.payload
        fn.stay_frozen(1.5)
        second = fn.invoke({"wait": True})
        assert second.ok, second.payload
        assert second.payload["connectionId"] != first.payload["connectionId"]


def test_recommended_callback_handler_completes(lambda_freeze, lambda_freeze_mysql, sequelize_sample):
    db = lambda_freeze_mysql()
    for _ in range(RUNS):
        fn = recommended(lambda_freeze, sequelize_sample, db, "index.callbackHandler", upstreams=upstream(db))
        first = fn.invoke({})
        assert first.ok, first.payload  # the event loop emptied: close() left no connection and no timer
        second = fn.invoke({})
        assert second.ok, second.payload
        assert not cold(second)


@pytest.mark.parametrize("handler", ["index.handler", "index.uncaught"])
def test_recommended_keeps_a_query_in_its_invocation(lambda_freeze, lambda_freeze_mysql, sequelize_sample, handler):
    """(a) and (b): close() in `finally` waits for the query that was not awaited, so it ends in its own
    invocation, and nothing is left to strike the next one."""
    db = lambda_freeze_mysql()
    for _ in range(RUNS):
        fn = recommended(lambda_freeze, sequelize_sample, db, handler, upstreams=upstream(db))
        fn.faults("DB").add("handshake", Latency(latency_ms=HANDSHAKE_LATENCY_MS), direction="downstream")
        first = fn.invoke({})
        assert first.ok, first.payload
        if handler == "index.handler":
            assert f"\tINFO\tquery of {first.request_id} returned connection " in first.log
        fn.stay_frozen(ACQUIRE_MS / 1000 + 0.5)
        second = fn.invoke({"wait": True})
        assert second.ok, second.payload
        assert first.request_id not in second.log
        assert not cold(second)


def test_recommended_with_a_dropped_connection(lambda_freeze, lambda_freeze_mysql, sequelize_sample):
    """(c): the dropped connection fails the invocation that opened it, after connectTimeout; the next is fine."""
    db = lambda_freeze_mysql()
    for _ in range(RUNS):
        fn = recommended(lambda_freeze, sequelize_sample, db, upstreams=upstream(db))
        fn.faults("DB").add("blackhole", Timeout(timeout_ms=0), direction="downstream")
        first = fn.invoke({})
        assert first.error_type == "SequelizeConnectionError", first.payload
        assert first.error_message == "connect ETIMEDOUT"
        fn.stay_frozen((ACQUIRE_MS + CONNECT_TIMEOUT_MS) / 2000)
        fn.faults("DB").remove("blackhole")
        second = fn.invoke({"wait": True})
        assert second.ok, second.payload
        assert first.request_id not in second.log

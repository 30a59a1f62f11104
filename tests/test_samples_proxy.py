"""The samples that need the network between function and database to misbehave, through the fault proxy:
each variant five times against the real PostgreSQL, the exact outcome asserted every time."""

from __future__ import annotations

from pathlib import Path

import pytest

from emulator.proxy import ColdStart, IdleDrop, WhileFrozen

pytestmark = pytest.mark.timeout(180)

SAMPLES = Path(__file__).parent.parent / "samples/python"
RUNS = 5
PG = {"DB": "127.0.0.1:5432"}


def through_proxy(db) -> dict[str, str]:
    """The login's variables without host and port: the emulator points DB_HOST/DB_PORT at the proxy."""
    return {k: v for k, v in db.env().items() if k not in ("DB_HOST", "DB_PORT")}


@pytest.mark.parametrize("freezer", ["auto", "none"])
def test_thread_loop_pool_with_fins_lost_while_frozen(lambda_freeze, lambda_freeze_postgres, freezer):
    """Frozen, the server's FIN is lost and the next query times out; unfrozen, the loop replaced the connection."""
    # Closed after 2 s idle; frozen (or idle) 3 s: the unfrozen pool's replacement is 1 s old when used, 1 s
    # before the server would close it too.
    db = lambda_freeze_postgres(idle_session_timeout_s=2.0)
    for _ in range(RUNS):
        fn = lambda_freeze.function(
            SAMPLES / "asyncpg_thread_loop/broken", env=through_proxy(db), upstreams=PG, freezer=freezer, timeout_s=10
        )
        fn.faults("DB").add("lost-fin", WhileFrozen(mode="drop"), direction="downstream")
        first = fn.invoke({})
        assert first.ok, first.payload
        if freezer == "none":
            fn.stay_frozen(3.0)  # freezer "none": only time passes, and the loop thread runs
            second = fn.invoke({})
            assert second.ok, second.payload
            assert second.payload["backend_pid"] != first.payload["backend_pid"]
            events = fn.faults("DB").events()
            # The server closed the idle session with a FIN, it reached the client, and the pool reconnected.
            assert any(e["kind"] == "close" and e.get("by") == "upstream" and e.get("how") == "fin" for e in events)
            assert sum(e["kind"] == "connect" for e in events) == 2
        else:
            fn.stay_frozen(3.0)
            second = fn.invoke({})
            assert second.error_type == "TimeoutError", second.payload
            dropped = [e for e in fn.faults("DB").events() if e.get("kind") == "dropped"]
            assert dropped, "the proxy lost the server's close while the environment was frozen"


def test_thread_loop_pool_fixed_with_a_short_ping(lambda_freeze, lambda_freeze_postgres):
    db = lambda_freeze_postgres(idle_session_timeout_s=2.0)
    for _ in range(RUNS):
        fn = lambda_freeze.function(
            SAMPLES / "asyncpg_thread_loop/fixed", env=through_proxy(db), upstreams=PG, timeout_s=10
        )
        fn.faults("DB").add("lost-fin", WhileFrozen(mode="drop"), direction="downstream")
        first = fn.invoke({})
        assert first.ok, first.payload
        fn.stay_frozen(3.0)
        second = fn.invoke({})
        assert second.ok, second.payload
        assert second.payload["backend_pid"] != first.payload["backend_pid"]


@pytest.mark.parametrize(("variant", "ok"), [("broken", False), ("fixed", True)])
def test_aurora_wakeup(lambda_freeze, lambda_freeze_postgres, variant, ok):
    db = lambda_freeze_postgres()
    for _ in range(RUNS):
        fn = lambda_freeze.function(
            SAMPLES / f"aurora_wakeup/{variant}",
            env={**through_proxy(db), "CONNECT_TIMEOUT_S": "1" if variant == "broken" else "10"},
            upstreams=PG,
            timeout_s=15,
        )
        fn.faults("DB").add("waking", ColdStart(delay_s=2.0), direction="upstream")
        result = fn.invoke({})
        if ok:
            assert result.ok, result.payload
            assert result.payload == {"value": 1}
            duration_ms = float(result.log.split("\tDuration: ")[1].split(" ms")[0])
            assert duration_ms >= 2000  # it waited for the wake-up
        else:
            assert result.error_type == "TimeoutError", result.payload
        fn.stay_frozen(2.0)  # the cluster finishes waking meanwhile
        assert fn.invoke({}).ok  # awake now: both variants connect


@pytest.mark.parametrize(("variant", "ok"), [("broken", False), ("fixed", True)])
def test_nat_idle_drop(lambda_freeze, lambda_freeze_postgres, variant, ok):
    db = lambda_freeze_postgres()
    for _ in range(RUNS):
        fn = lambda_freeze.function(
            SAMPLES / f"nat_idle_drop/{variant}", env=through_proxy(db), upstreams=PG, timeout_s=4
        )
        fn.faults("DB").add("nat", IdleDrop(idle_s=1.0, count_keepalives=False), direction="both")
        first = fn.invoke({})
        assert first.ok, first.payload
        fn.stay_frozen(1.5)  # idle past the drop
        second = fn.invoke({})
        if ok:
            assert second.ok, second.payload
            assert second.payload["backend_pid"] != first.payload["backend_pid"]
        else:
            # The driver's 2 s query timeout fires, then returning the connection to the pool hangs on it.
            assert second.error_type == "Sandbox.Timedout", second.payload
            assert second.error_message.endswith("Task timed out after 4.00 seconds")

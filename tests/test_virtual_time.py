"""Virtual time: a 15-minute freeze that lasts milliseconds, with the runtime's clocks (libfaketime preloaded) moved
by the gap on thaw, under the real runtime clients, and the Deadline header on the runtime's clock."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from conftest import FUNCTIONS, require
from emulator.config.settings import FunctionConfig
from emulator.databases import PostgresRoles, postgres_dsn
from emulator.engine import clock, node_ric
from emulator.errors import ConfigError, LambdaFreezeError
from emulator.harness import LambdaFreeze
from emulator.proxy import WhileFrozen

pytestmark = pytest.mark.timeout(90)

GAP_S = 900.0  # 15 minutes, frozen virtually
TIMEOUT_S = 30.0
WALL_BUDGET_S = 5.0  # the bound for a virtual freeze of minutes and the invocation that meets it


def _preload() -> None:
    try:
        clock.preload_library()
    except LambdaFreezeError as exc:
        require(False, exc.message)


@pytest.fixture
def lf() -> Iterator[LambdaFreeze]:
    _preload()
    harness = LambdaFreeze()
    yield harness
    harness.close()


def _assert_moved(first: dict[str, float], second: dict[str, float], key: str) -> None:
    moved = second[key] - first[key]
    # The gap plus the real time between the two readings: two invocations on a loaded 2-core machine.
    assert GAP_S <= moved < GAP_S + WALL_BUDGET_S, (key, moved)


def test_python_clocks_move_by_the_virtual_gap_and_a_background_reaper_sees_it(lf: LambdaFreeze) -> None:
    fn = lf.function(FUNCTIONS / "python/virtual_clock", virtual_time=True, timeout_s=TIMEOUT_S)
    first = fn.invoke({})
    assert first.ok, first.payload
    assert not first.payload["reaped"]
    started = time.monotonic()
    fn.stay_frozen(GAP_S, virtual=True)
    (env,) = fn.environments()
    assert env["virtual_offset_s"] == GAP_S and env["kernel_frozen"]
    second = fn.invoke({"await_reaper_s": 5})
    elapsed = time.monotonic() - started
    assert second.ok, second.payload
    for key in ("wall_s", "monotonic_s", "boottime_s"):
        _assert_moved(first.payload, second.payload, key)
    # The pool's 10-minute idle timer, on its own thread, fired after the thaw.
    assert second.payload["reaped"]
    # Lambda-Runtime-Deadline-Ms is on the runtime's clock: the remaining time is the function's timeout.
    assert TIMEOUT_S * 1000 - 5000 < second.payload["remaining_ms"] <= TIMEOUT_S * 1000
    assert elapsed < WALL_BUDGET_S, elapsed


def test_python_waits_after_a_virtual_gap_take_real_time_and_a_sleep_under_way_keeps_its_real_deadline(
    lf: LambdaFreeze,
) -> None:
    sleep_s = 3.0
    fn = lf.function(FUNCTIONS / "python/virtual_clock", virtual_time=True, timeout_s=TIMEOUT_S)
    started = time.monotonic()
    assert fn.invoke({"start_sleep_s": sleep_s}).ok
    fn.stay_frozen(GAP_S, virtual=True)
    second = fn.invoke({"timed_wait_s": 0.3})
    assert second.ok, second.payload
    # The timed wait's deadline, computed on the runtime's clock, is turned back into real time: 0.3 s, not 900.3.
    assert 0.3 <= second.payload["waited_s"] < 2.0, second.payload
    # The thread already asleep when the environment froze sleeps its real remaining time (clock.py says why).
    if time.monotonic() - started < sleep_s:
        assert not second.payload["slept"], second.payload
    third = fn.invoke({"await_sleeper_s": sleep_s + 5})
    assert third.ok and third.payload["slept"], third.payload


def test_node_clocks_move_and_a_ten_minute_timer_fires_on_thaw(lf: LambdaFreeze) -> None:
    try:
        node_ric.command("nodejs20.x", FUNCTIONS / "node/virtual_clock", "index.handler")
    except ConfigError as exc:
        require(False, exc.message)
    fn = lf.function(
        FUNCTIONS / "node/virtual_clock", "index.handler", runtime="nodejs20.x", virtual_time=True, timeout_s=TIMEOUT_S
    )
    first = fn.invoke({})
    assert first.ok and first.payload["fired"] is False, first.payload
    started = time.monotonic()
    fn.stay_frozen(GAP_S, virtual=True)
    second = fn.invoke({})
    elapsed = time.monotonic() - started
    assert second.ok, second.payload
    _assert_moved(first.payload, second.payload, "wall_s")
    _assert_moved(first.payload, second.payload, "monotonic_s")
    # Expired timers fire in the timers phase on thaw, before the new event is handled.
    assert second.payload["fired"] is True
    assert TIMEOUT_S * 1000 - 5000 < second.payload["remaining_ms"] <= TIMEOUT_S * 1000
    assert elapsed < WALL_BUDGET_S, elapsed


def test_real_time_function_refuses_a_virtual_freeze(lf: LambdaFreeze) -> None:
    fn = lf.function(FUNCTIONS / "python/virtual_clock")
    assert fn.invoke({}).ok
    with pytest.raises(LambdaFreezeError, match="virtual_time=True"):
        fn.stay_frozen(GAP_S, virtual=True)


def test_a_static_provided_runtime_is_refused_virtual_time(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="vDSO"):
        FunctionConfig(name="go", code_dir=tmp_path, handler="bootstrap", runtime="provided.al2023", virtual_time=True)


def test_the_clock_file_only_moves_forward_and_goes_with_the_clock() -> None:
    _preload()
    vc = clock.VirtualClock("env-test")
    path = vc.path
    vc.advance(1.5)
    assert path.read_bytes() == (1_500_000_000).to_bytes(8, "little") and vc.offset_ms == 1500
    assert vc.environment("/opt/own.so") == {
        "LD_PRELOAD": f"{vc.library}:/opt/own.so",
        "LAMBDA_FREEZE_CLOCK_FILE": str(path),
    }
    with pytest.raises(LambdaFreezeError, match="forward"):
        vc.advance(-1)
    vc.close()
    assert not path.exists()


SAMPLES = Path(__file__).parent.parent / "samples/python"


def test_a_background_thread_pool_meets_a_15_minute_idle_timeout_in_a_30_minute_virtual_freeze(
    lf: LambdaFreeze,
) -> None:
    """The catalog's asyncpg pool on a background thread, with production settings, through the pytest plugin's
    pieces: PostgreSQL's 15-minute idle_session_timeout, declared from the database login, a 30-minute virtual
    freeze, and a network that loses the server's close meanwhile. The same TimeoutError as the real-time run."""
    roles = PostgresRoles(postgres_dsn())
    try:
        roles.check()
    except OSError as exc:
        require(False, f"PostgreSQL is not reachable: {exc}")
    try:
        db = roles.create(idle_session_timeout_s=900)
        fn = lf.function(
            SAMPLES / "asyncpg_thread_loop/broken",
            virtual_time=True,
            timeout_s=10,
            env=db.env("DB"),
            upstreams={"DB": f"{db.host}:{db.port}"},
        )
        fn.faults("DB").server_idle_timeout_of(db)
        fn.faults("DB").add("lost-fin", WhileFrozen(mode="drop"))
        first = fn.invoke({})
        assert first.ok, first.payload
        started = time.monotonic()  # the freeze and the invocation that meets it: what virtual time saves, not INIT
        fn.stay_frozen(1800, virtual=True)
        second = fn.invoke({})
        elapsed = time.monotonic() - started
        assert second.error_type == "TimeoutError", second.payload
        assert elapsed < WALL_BUDGET_S, elapsed
        events = fn.faults("DB").events()
        fired = [e for e in events if e["kind"] == "fired" and e.get("toxic") == "server_idle_timeout"]
        assert len(fired) == 1, fired
    finally:
        roles.drop_all()

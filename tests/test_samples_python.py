"""The Python database samples, through the pytest plugin's own fixtures, against the real servers: each variant
five times, the exact outcome asserted every time."""

from __future__ import annotations

from pathlib import Path

import pytest

pytestmark = pytest.mark.timeout(120)

SAMPLES = Path(__file__).parent.parent / "samples/python"
RUNS = 5


def test_asyncpg_pool_broken_fails_after_idle_session_timeout(lambda_freeze, lambda_freeze_postgres):
    db = lambda_freeze_postgres(idle_session_timeout_s=0.5)
    for _ in range(RUNS):
        fn = lambda_freeze.function(SAMPLES / "asyncpg_pool/broken", env=db.env())
        first = fn.invoke({})
        assert first.ok, first.payload
        fn.stay_frozen(1.0)  # the server closes the idle session meanwhile
        second = fn.invoke({})
        assert second.error_type == "ConnectionDoesNotExistError", second.payload
        assert "connection was closed" in second.error_message


def test_asyncpg_pool_fixed_survives_idle_session_timeout(lambda_freeze, lambda_freeze_postgres):
    db = lambda_freeze_postgres(idle_session_timeout_s=0.5)
    for _ in range(RUNS):
        fn = lambda_freeze.function(SAMPLES / "asyncpg_pool/fixed", env=db.env())
        first = fn.invoke({})
        assert first.ok, first.payload
        fn.stay_frozen(1.0)
        second = fn.invoke({})
        assert second.ok, second.payload
        assert second.payload["backend_pid"] != first.payload["backend_pid"]  # a fresh session replaced it


def test_aiomysql_pool_broken_fails_after_wait_timeout(lambda_freeze, lambda_freeze_mysql):
    db = lambda_freeze_mysql(wait_timeout_s=1)
    for _ in range(RUNS):
        fn = lambda_freeze.function(SAMPLES / "aiomysql_pool/broken", env=db.env())
        first = fn.invoke({})
        assert first.ok, first.payload
        fn.stay_frozen(2.0)
        second = fn.invoke({})
        assert second.error_type == "OperationalError", second.payload
        assert second.error_message.startswith(("(2013, 'Lost connection to MySQL server during query",
                                                "(2006, 'MySQL server has gone away")), second.error_message


def test_aiomysql_pool_fixed_with_pool_recycle(lambda_freeze, lambda_freeze_mysql):
    db = lambda_freeze_mysql(wait_timeout_s=1)
    for _ in range(RUNS):
        fn = lambda_freeze.function(SAMPLES / "aiomysql_pool/fixed", env={**db.env(), "DB_WAIT_TIMEOUT_S": "1"})
        first = fn.invoke({})
        assert first.ok, first.payload
        fn.stay_frozen(2.0)
        second = fn.invoke({})
        assert second.ok, second.payload
        assert second.payload["connection_id"] != first.payload["connection_id"]

"""The pytest plugin as its users meet it: fixtures in a fresh pytest run (pytester), xdist, pytest-asyncio."""

from __future__ import annotations

from pathlib import Path

import asyncpg  # noqa: F401
import pymysql  # noqa: F401
import pytest

from conftest import require

# The database drivers are imported before any pytester test: pytester restores sys.modules when a test ends, which
# would drop drivers first imported inside a test, and a later import of asyncpg's compiled modules in the same
# process then crashes it (a segmentation fault in the next test that connects).

pytestmark = pytest.mark.timeout(120)

HELLO = Path(__file__).parent.parent / "samples/python/hello"
BASIC = Path(__file__).parent / "functions/python/basic"


def test_function_fixture_invoke_freeze_inspect(pytester):
    pytester.makepyfile(
        f"""
        import os
        from pathlib import Path

        def test_hello(lambda_freeze):
            fn = lambda_freeze.function({str(HELLO)!r}, handler="app.handler", name="hello")
            first = fn.invoke({{"name": "Ada"}})
            assert first.ok and first.payload == {{"message": "hello Ada", "warm_invocations": 1}}
            assert "Init Duration" in first.log
            fn.stay_frozen(0.2)
            (env,) = fn.environments()
            assert env["state"] == "frozen" and env["kernel_frozen"]
            assert fn.invoke({{}}).payload["warm_invocations"] == 2
            Path("pid").write_text(str(env["pid"]))

        def test_errors(lambda_freeze):
            fn = lambda_freeze.function({str(BASIC)!r}, timeout_s=1)
            assert fn.invoke({{"action": "raise", "detail": "x"}}).error_type == "ValueError"
            assert fn.invoke({{"action": "sleep", "seconds": 5}}).error_type == "Sandbox.Timedout"
            request_id = fn.invoke_async({{"action": "echo"}})
            fn.wait_for(lambda envs: any(e["invocations"] for e in envs) and all(e["state"] == "frozen" for e in envs))
            assert any(request_id in line for line in fn.logs)
        """
    )
    result = pytester.runpytest_subprocess("-q", "-p", "no:cacheprovider")
    result.assert_outcomes(passed=2)
    pid = int((pytester.path / "pid").read_text())
    assert not Path(f"/proc/{pid}").exists()  # stopped when the test ended


def test_with_pytest_asyncio_strict_and_xdist(pytester):
    pytester.makeini("[pytest]\nasyncio_mode = strict\nasyncio_default_fixture_loop_scope = function\n")
    pytester.makepyfile(
        f"""
        import asyncio
        import pytest

        @pytest.mark.asyncio
        @pytest.mark.parametrize("n", range(2))
        async def test_async(lambda_freeze, n):
            fn = lambda_freeze.function({str(HELLO)!r})
            result = await asyncio.to_thread(fn.invoke, {{"name": str(n)}})
            assert result.payload["message"] == f"hello {{n}}"
        """
    )
    result = pytester.runpytest_subprocess("-q", "-p", "no:cacheprovider", "-n", "2")
    result.assert_outcomes(passed=2)


def test_database_fixtures_create_and_drop_their_logins(pytester):
    pytester.makepyfile(
        """
        from pathlib import Path

        def test_logins(lambda_freeze_postgres, lambda_freeze_mysql):
            pg = lambda_freeze_postgres(idle_session_timeout_s=1, connection_limit=3)
            my = lambda_freeze_mysql(wait_timeout_s=2, max_connections=1)
            assert pg.settings == {"idle_session_timeout": "1000ms"}
            assert my.env()["DB_INIT_COMMAND"] == "SET SESSION wait_timeout = 2"
            assert pg.sessions() == 0 and my.sessions() == 0
            Path("logins").write_text(pg.user + " " + my.user)
        """
    )
    result = pytester.runpytest_subprocess("-q", "-p", "no:cacheprovider")
    result.assert_outcomes(passed=1)
    pg_user, my_user = (pytester.path / "logins").read_text().split()
    from emulator.databases import MySQLUsers, PostgresRoles, _run, mysql_dsn, postgres_dsn

    roles = PostgresRoles(postgres_dsn())
    rows = _run(lambda: roles._execute(f"SELECT count(*) FROM pg_roles WHERE rolname = '{pg_user}'"))
    assert rows[0][0][0] == 0
    users = MySQLUsers(mysql_dsn())
    assert users._execute(f"SELECT COUNT(*) FROM mysql.user WHERE User = '{my_user}'")[0][0] == 0


def test_postgres_roles_are_created_and_dropped_by_parallel_workers_at_once():
    # xdist workers create and drop roles at the same moments: each GRANT on the one database and its public schema
    # (and each DROP OWNED revoking them) rewrites the same catalog rows, which failed a worker with "tuple
    # concurrently updated" until the statements took turns
    import threading

    from emulator.databases import PostgresRoles, _run, postgres_dsn

    probe = PostgresRoles(postgres_dsn())
    try:
        probe.check()
    except OSError as exc:
        require(False, f"PostgreSQL is not reachable: {exc}")
    errors: list[BaseException] = []
    names: list[str] = []
    start = threading.Barrier(6)

    def worker() -> None:
        roles = PostgresRoles(postgres_dsn())
        try:
            start.wait()
            for _ in range(4):
                names.append(roles.create(idle_session_timeout_s=5, own_schema=True).user)
            roles.drop_all()
        except BaseException as exc:  # collected, and asserted on below
            errors.append(exc)

    threads = [threading.Thread(target=worker) for _ in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert errors == [] and len(names) == 24
    quoted = ", ".join(f"'{name}'" for name in names)
    rows = _run(lambda: probe._execute(f"SELECT count(*) FROM pg_roles WHERE rolname IN ({quoted})"))
    assert rows[0][0][0] == 0


def test_missing_database_fails_under_ci(pytester, monkeypatch):
    pytester.makepyfile(
        """
        def test_db(lambda_freeze_postgres):
            pass
        """
    )
    monkeypatch.setenv("CI", "true")  # the subprocess inherits it; undone when this test ends
    monkeypatch.setenv("LAMBDA_FREEZE_PG_DSN", "postgresql://postgres@127.0.0.1:1/test")
    result = pytester.runpytest_subprocess("-q", "-p", "no:cacheprovider")
    result.assert_outcomes(errors=1)
    result.stdout.fnmatch_lines(["*PostgreSQL is not reachable*"])


def test_function_http_front_door(pytester):
    code = Path(__file__).parent / "functions/python/http"
    pytester.makeini("[pytest]\nasyncio_default_fixture_loop_scope = function\n")  # as a project using it sets
    pytester.makepyfile(
        f"""
        import requests

        def test_http(lambda_freeze):
            routes = ["GET /orders/{{id}}", "rest ANY /r/{{proxy+}}"]
            fn = lambda_freeze.function({str(code)!r}, name="Web", routes=routes, url=True)
            event = requests.get(fn.http + "/orders/7?x=1&x=2", timeout=30).json()
            assert event["routeKey"] == "GET /orders/{{id}}" and event["pathParameters"] == {{"id": "7"}}
            assert requests.get(fn.http + "/r/a/b", timeout=30).json()["resource"] == "/r/{{proxy+}}"
            fn.wait_frozen()
            port = fn.http.rsplit(":", 1)[1]
            assert fn.function_url == f"http://web.lambda-url.localhost:{{port}}/"
            host = {{"Host": fn.function_url.split("/")[2]}}
            assert requests.get(fn.http + "/inferred", headers=host, timeout=30).json() == {{"hello": "world"}}
        """
    )
    pytester.runpytest_subprocess("-p", "no:cacheprovider").assert_outcomes(passed=1)

"""What a scenario run does beyond functions and faults: services started before the functions and stopped (with
their process group) after every run, database setup, ``sql`` steps and queries on the run's own tables,
``await_async``, and expectations that name earlier invocations. Real processes, real databases."""

from __future__ import annotations

import json
import re
import textwrap
from pathlib import Path
from typing import Any

import pytest

from conftest import require
from emulator import scenario as sc
from emulator.cli import main
from emulator.databases import MySQLUsers, PostgresRoles, _run, mysql_dsn, postgres_dsn
from emulator.engine.process import exited_within
from emulator.scenario import services
from emulator.scenario.prerequisites import node_modules_problem
from emulator.scenario.runner import run_scenario

pytestmark = pytest.mark.timeout(90)

ROOT = Path(__file__).parent.parent
BASIC = ROOT / "tests/functions/python/basic"
PING_FIXED = ROOT / "samples/python/init_side_effect/fixed"

# Greets each connection ("hello", as the sample's one-client server does), then answers "pong" to every line, one
# connection at a time, on the port it is given. --stubborn: ignores SIGTERM;
# --child: starts a child that ignores SIGTERM too and waits for a signal.
SERVER = '''
import signal, socket, subprocess, sys

port = int(sys.argv[1])
if "--stubborn" in sys.argv:
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
if "--child" in sys.argv:
    code = "import signal; signal.signal(signal.SIGTERM, signal.SIG_IGN); signal.pause()"
    print(f"child {subprocess.Popen([sys.executable, '-c', code]).pid}", flush=True)
server = socket.create_server(("127.0.0.1", port))
print("listening", flush=True)
while True:
    conn, _ = server.accept()
    try:
        with conn, conn.makefile("rwb") as stream:
            stream.write(b"hello\\n")
            stream.flush()
            for line in stream:
                stream.write(b"pong\\n")
                stream.flush()
    except OSError:  # a client that left at once (a readiness probe): the next one
        pass
'''

# Pings the server at SERVER_HOST:SERVER_PORT (an upstream: the fault proxy's port of this environment).
PROXIED = '''
import os, socket

def handler(event, context):
    with socket.create_connection((os.environ["SERVER_HOST"], int(os.environ["SERVER_PORT"])), timeout=5) as conn:
        stream = conn.makefile("rwb")
        stream.readline()  # the greeting
        stream.write(b"ping\\n")
        stream.flush()
        return {"answer": stream.readline().strip().decode()}
'''


def write(tmp_path: Path, text: str, name: str = "scenario.toml") -> Path:
    path = tmp_path / name
    path.write_text(textwrap.dedent(text))
    return path


def repro(capsys: pytest.CaptureFixture[str], *args: Any) -> tuple[int, dict[str, Any], str]:
    status = main(["repro", *map(str, args), "--json"])
    out, err = capsys.readouterr()
    return status, json.loads(out) if out else {}, err


def service_events(result: Any, what: str | None = None) -> list[dict[str, Any]]:
    return [e.detail for e in result.events if e.kind == "service" and (what is None or e.detail["what"] == what)]


def gone(pid: int, within_s: float = 5.0) -> bool:
    """The process has ended, or ends within ``within_s`` (a SIGKILL is delivered a moment after ``kill`` returns)."""
    return exited_within(pid, within_s)


def require_database(admin: Any, what: str) -> Any:
    try:
        admin.check()
    except OSError as exc:
        require(False, f"{what} is not reachable: {exc}")
    return admin


# ------------------------------------------------------------------------------------------------- services
@pytest.mark.timeout(60)
def test_a_service_on_a_port_of_its_own_is_reached_directly_and_through_the_proxy(tmp_path: Path) -> None:
    (tmp_path / "server.py").write_text(SERVER)
    (tmp_path / "proxied").mkdir()
    (tmp_path / "proxied/app.py").write_text(PROXIED)
    path = write(tmp_path, f"""
        runs = 2

        [services.pong]
        command = ["${{python}}", "server.py", "${{port}}"]   # ready once the port accepts a connection

        [functions.direct]
        code_dir = "{PING_FIXED}"
        env = {{ SERVER_ADDR = "${{services.pong.address}}" }}

        [functions.proxied]
        code_dir = "proxied"
        upstreams = {{ SERVER = "pong" }}

        [[steps]]
        invoke = {{ function = "direct", as = "direct" }}

        [[steps]]
        invoke = {{ function = "proxied", as = "proxied" }}

        [[steps]]
        expect = {{ invoke = "direct", ok = true, payload = '"answer": "pong"' }}

        [[steps]]
        expect = {{ invoke = "proxied", ok = true, payload = '"answer": "pong"' }}
    """)
    results = run_scenario(sc.load(path))
    assert [r.reproduced for r in results] == [True, True], [r.failure for r in results]
    ports = [service_events(r, "ready")[0]["port"] for r in results]
    assert ports[0] != ports[1]  # a free port every run
    for result, port in zip(results, ports, strict=True):
        assert service_events(result)[0]["what"] == "started"
        assert service_events(result, "ready")[0]["text"].startswith(f"ready on port {port} (")
        assert service_events(result)[-1]["what"] == "stopped"
        assert gone(service_events(result, "started")[0]["pid"])
        proxy = [e.detail for e in result.events if e.kind == "proxy" and e.detail.get("proxy") == "proxied/SERVER"]
        assert any(d["event"] == "connect" for d in proxy)  # through the fault proxy, to the service


def test_services_are_stopped_with_their_process_group_after_every_run(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A service that ignores SIGTERM, with a child that ignores it too: killed after the grace period, the whole
    group, every run."""
    monkeypatch.setattr(services, "STOP_GRACE_S", 0.3)
    (tmp_path / "server.py").write_text(SERVER)
    path = write(tmp_path, f"""
        runs = 2

        [services.stubborn]
        command = ["${{python}}", "server.py", "${{port}}", "--stubborn", "--child"]
        ready_line = "^listening$"

        [functions.fn]
        code_dir = "{BASIC}"

        [[steps]]
        invoke = {{}}

        [[steps]]
        expect = {{ ok = true }}
    """)
    results = run_scenario(sc.load(path))
    assert [r.reproduced for r in results] == [True, True]
    for result in results:
        (started,) = service_events(result, "started")
        (child,) = [int(d["line"].split()[1]) for d in service_events(result, "output") if "child" in d["line"]]
        (stopped,) = service_events(result, "stopped")
        assert stopped["text"] == "stopped (signal: killed)"  # SIGTERM was not enough
        assert gone(started["pid"]) and gone(child)


def test_a_service_that_ends_before_it_is_ready_stops_the_run_with_its_output(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = write(tmp_path, f"""
        runs = 1

        [services.broken]
        command = ["${{python}}", "-c", "print('no config file'); raise SystemExit(3)"]
        ready_line = "^ready$"

        [functions.fn]
        code_dir = "{BASIC}"

        [[steps]]
        invoke = {{}}

        [[steps]]
        expect = {{ ok = true }}
    """)
    status, report, _ = repro(capsys, path)
    assert status == 1 and report["reproduced"] == 0
    failure = report["results"][0]["failure"]
    assert failure.startswith("setup: ServiceFailed: service broken ended before it was ready (exit status 3); its "
                              "last output: no config file"), failure
    assert report["steps"][0]["outcomes"] == {}  # no step ran


def test_a_service_not_ready_in_time_is_stopped(tmp_path: Path) -> None:
    path = write(tmp_path, f"""
        runs = 1

        [services.silent]
        command = ["${{python}}", "-c", "import signal; signal.pause()"]
        ready_line = "^ready$"
        ready_timeout = 0.3

        [functions.fn]
        code_dir = "{BASIC}"

        [[steps]]
        invoke = {{}}

        [[steps]]
        expect = {{ ok = true }}
    """)
    (result,) = run_scenario(sc.load(path))
    assert result.aborted == ("setup: ServiceFailed: service silent not ready after 0.3 s: no line of its output "
                              "matched ready_line /^ready$/; it wrote nothing")
    (started,) = service_events(result, "started")
    assert service_events(result, "stopped")[0]["text"] == "stopped (signal: terminated)"
    assert gone(started["pid"])


def test_a_service_whose_program_is_missing_cannot_run(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = write(tmp_path, f"""
        [services.s]
        command = ["lambda-freeze-no-such-program", "--port", "${{port}}"]

        [functions.fn]
        code_dir = "{BASIC}"

        [[steps]]
        invoke = {{}}

        [[steps]]
        expect = {{ ok = true }}
    """)
    status = main(["repro", str(path)])
    out, err = capsys.readouterr()
    assert (status, out) == (2, "")
    assert "service s: command 'lambda-freeze-no-such-program' is not on PATH" in err


# ------------------------------------------------------------------------------------------------------ SQL
@pytest.mark.timeout(60)
def test_setup_sql_steps_and_queries_use_the_runs_own_tables(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The same CREATE TABLE every run works: each run's role has a schema of its own, gone with the role."""
    admin = require_database(PostgresRoles(postgres_dsn()), "PostgreSQL")
    path = write(tmp_path, f"""
        runs = 2

        [databases.pg]
        kind = "postgresql"
        setup = ["CREATE TABLE items (n int)", "INSERT INTO items VALUES (1), (2)"]

        [functions.fn]
        code_dir = "{BASIC}"
        [functions.fn.env]
        LOGIN = "${{databases.pg.user}}"
        DSN = "${{databases.pg.host}}:${{databases.pg.port}}/${{databases.pg.name}}"

        [[steps]]
        invoke = {{ as = "env", payload = {{ action = "env" }} }}

        [[steps]]
        sql = "INSERT INTO items VALUES (3)"

        [[steps]]
        sql = {{ database = "pg", run = ["SELECT current_schema()"] }}

        [[steps]]
        expect = {{ invoke = "env", payload = '"LOGIN": "lf_[0-9a-f]{{10}}"' }}

        [[steps]]
        expect = {{ invoke = "env", payload = '"DSN": "127\\.0\\.0\\.1:5432/test"' }}

        [[steps]]
        expect = {{ query = "SELECT count(*) FROM items", equals = 3 }}

        [[steps]]
        expect = {{ query = "SELECT n, n * 1.5 FROM items ORDER BY n", equals = [[1, 1.5], [2, 3], [3, 4.5]] }}

        [[steps]]
        expect = {{ query = "SELECT current_schema() = current_user", equals = true }}
    """)
    status, report, err = repro(capsys, path)
    assert status == 0, (report["results"], err)
    assert report["steps"][1]["outcomes"] == {"ran 1": 2}
    schemas = [json.loads(r["steps"][2]["detail"]) for r in report["results"]]
    assert schemas[0] != schemas[1] and all(name.startswith("lf_") for name in schemas)

    async def left() -> list[Any]:
        import asyncpg

        conn = await asyncpg.connect(admin.admin_dsn)
        try:
            return list(await conn.fetch("SELECT nspname FROM pg_namespace WHERE nspname = any($1::text[]) UNION ALL "
                                         "SELECT rolname FROM pg_roles WHERE rolname = any($1::text[])", schemas))
        finally:
            await conn.close()

    assert _run(left) == []  # schemas, their tables and the roles are gone


@pytest.mark.timeout(60)
def test_a_query_that_returns_something_else_does_not_hold(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    require_database(PostgresRoles(postgres_dsn()), "PostgreSQL")
    path = write(tmp_path, f"""
        runs = 1

        [databases.pg]
        kind = "postgresql"
        setup = "CREATE TABLE q AS SELECT generate_series(1, 3) AS id"

        [functions.fn]
        code_dir = "{BASIC}"

        [[steps]]
        invoke = {{}}

        [[steps]]
        expect = {{ query = "SELECT id FROM q ORDER BY id", equals = [1, 2] }}
    """)
    status, report, _ = repro(capsys, path)
    assert status == 1
    assert report["results"][0]["failure"] == "expect#1 → pg query: the query returned [1, 2, 3], not [1, 2]"


@pytest.mark.timeout(60)
def test_mysql_logins_get_a_database_of_their_own(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    admin = require_database(MySQLUsers(mysql_dsn()), "MySQL")
    path = write(tmp_path, f"""
        runs = 2

        [databases.my]
        kind = "mysql"
        setup = ["CREATE TABLE items (n int)", "INSERT INTO items VALUES (1), (2)"]

        [functions.fn]
        code_dir = "{BASIC}"

        [[steps]]
        invoke = {{}}

        [[steps]]
        sql = "SELECT DATABASE()"

        [[steps]]
        expect = {{ query = "SELECT count(*), SUM(n) FROM items", equals = [[2, 3]] }}
    """)
    status, report, err = repro(capsys, path)
    assert status == 0, (report["results"], err)
    databases = [json.loads(r["steps"][1]["detail"]) for r in report["results"]]
    assert databases[0] != databases[1] and all(name.startswith("lf_") for name in databases)
    assert admin._execute(*(f"SHOW DATABASES LIKE '{name}'" for name in databases)) == []


# ------------------------------------------------------------------------------------- asynchronous events
@pytest.mark.timeout(60)
def test_await_async_waits_for_every_event_and_says_when_it_gives_up(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = write(tmp_path, f"""
        runs = 1

        [functions.fn]
        code_dir = "{BASIC}"
        maximum_retry_attempts = 0

        [[steps]]
        invoke_async = {{ as = "one" }}

        [[steps]]
        invoke_async = {{ as = "two", payload = {{ action = "raise", detail = "async" }} }}

        [[steps]]
        await_async = "fn"

        [[steps]]
        invoke_async = {{ as = "slow", payload = {{ action = "sleep", seconds = 1.5 }} }}

        [[steps]]
        await_async = {{ function = "fn", timeout = 0.2 }}

        [[steps]]
        expect = {{ invoke = "one", ok = true }}
    """)
    status, report, _ = repro(capsys, path)
    assert status == 1
    assert report["steps"][2]["outcomes"] == {"drained (1 delivered, 1 failed)": 1}
    failure = report["results"][0]["failure"]
    assert failure == ("await_async#2 (fn): TimeoutError: function fn's asynchronous events not done after 0.2 s: 0 "
                       "queued, 0 waiting for a retry, 1 being delivered"), failure


# ------------------------------------------------------------------------------------------- expectations
@pytest.mark.timeout(60)
def test_expectations_name_earlier_invocations(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    text = f"""
        runs = 1

        [functions.fn]
        code_dir = "{BASIC}"

        [[steps]]
        invoke = {{ as = "first", payload = {{ n = 7, items = [{{ id = "a.b" }}] }} }}

        [[steps]]
        invoke = {{ as = "second", payload = {{ n = 7, items = [{{ id = "aXb" }}] }} }}

        [[steps]]
        [steps.expect]
        invoke = "first"
        log = "echo for ${{invoke.first.request_id}}"
        not_log = "${{invoke.second.request_id}}"

        [[steps]]
        [steps.expect]
        invoke = "second"
        payload = '"n": ${{invoke.first.payload.n}}\\b'
        not_payload = '${{invoke.first.payload.items.0.id}}'
    """
    status, report, _ = repro(capsys, write(tmp_path, text))
    assert status == 0, report["results"]  # "a.b" escaped: it does not match "aXb"
    own_id = text.replace('not_log = "${invoke.second', 'not_log = "${invoke.first')  # its own request id
    status, report, _ = repro(capsys, write(tmp_path, own_id))
    assert status == 1
    failure = report["results"][0]["failure"]
    assert re.fullmatch(r"expect#1 → first: log has '[0-9a-f-]{36}', which matches /\$\{invoke\.first\.request_id\}/",
                        failure), failure
    status, report, _ = repro(capsys, write(tmp_path, text.replace("payload.items.0.id", "payload.items.1.id")))
    assert status == 1
    assert report["results"][0]["failure"] == (
        "expect#2 → second: response /${invoke.first.payload.items.1.id}/: the response has no items.1.id "
        """('{"n": 7, "items": [{"id": "a.b"}]}')""")


# ------------------------------------------------------------------------------------------- prerequisites
def test_a_node_function_needs_its_packages_installed(tmp_path: Path) -> None:
    project = tmp_path / "project"
    (project / "fn").mkdir(parents=True)
    (project / "package.json").write_text(json.dumps({"dependencies": {"sequelize": "^6", "mysql2": "^3"}}))
    assert node_modules_problem(project / "fn") == (
        f"mysql2, sequelize (dependencies in {project / 'package.json'}) are not installed: run `npm ci` (or "
        f"`npm install`) in {project}"
    )
    for name, where in (("sequelize", project), ("mysql2", tmp_path)):  # found where Node looks: upwards
        (where / "node_modules" / name).mkdir(parents=True)
        (where / "node_modules" / name / "package.json").write_text("{}")
    assert node_modules_problem(project / "fn") is None
    assert node_modules_problem(tmp_path / "project") is None
    (project / "package.json").unlink()
    assert node_modules_problem(project / "fn") is None  # no package.json: nothing to install


def test_a_node_function_with_its_own_package_is_installed_by_the_engine(tmp_path: Path, monkeypatch) -> None:
    # the engine runs npm ci into a cached build for a code directory with a package.json of its own (as sam build):
    # a scenario is not refused for the node_modules it has not got, only when npm is not there to make them
    code = tmp_path / "fn"
    code.mkdir()
    (code / "package.json").write_text(json.dumps({"dependencies": {"left-pad": "1.3.0"}}))
    assert node_modules_problem(code, "nodejs20.x") is None
    assert "are not installed: run `npm ci`" in str(node_modules_problem(code))  # the build off: the user installs
    monkeypatch.setenv("PATH", str(tmp_path / "no-npm-here"))
    assert node_modules_problem(code, "nodejs20.x") == (
        f"the dependencies in {code / 'package.json'} are not installed, and npm is not on PATH to install them: "
        f"install Node.js's npm, or run `npm ci` in {code}"
    )
    (code / "package.json").write_text("{not json")
    assert str(node_modules_problem(code, "nodejs20.x")).startswith(f"cannot read {code / 'package.json'}: ")

"""Scenario files and ``lambda-freeze repro``: every shipped scenario replayed (real runtimes, real databases),
the checker's messages (line and field), the agreement of the checker with ``scenarios/schema.json``, and the
timeline renderings."""

from __future__ import annotations

import json
import math
import re
import socket
import tomllib
from pathlib import Path
from typing import Any

import pytest

from conftest import require
from emulator import scenario as sc
from emulator.cli import main
from emulator.config import FILE_KEYS, RUNTIMES
from emulator.config.events import _QUEUE_KEYS, _SCHEDULE_KEYS, _SQS_KEYS
from emulator.engine.freezer import CHOICES
from emulator.engine.timeline import TimelineEvent
from emulator.engine.trace import chrome_trace, text_timeline
from emulator.proxy import TOXICS
from emulator.scenario.bucket_checks import PUT_KEYS
from emulator.scenario.queue_checks import AWAIT_QUEUE_KEYS, QUEUE_EXPECT_KEYS, SEND_KEYS

ROOT = Path(__file__).parent.parent
SCENARIOS = ROOT / "scenarios"
SHIPPED = sorted(p for p in SCENARIOS.rglob("*") if p.suffix in (".toml", ".yaml", ".yml"))
SCHEMA = json.loads((SCENARIOS / "schema.json").read_text())
BASIC = ROOT / "tests/functions/python/basic"


def require_prerequisites(scenario: sc.Scenario) -> None:
    """A scenario's runtime clients and database servers: skipped locally without them, a failure under CI=true."""
    try:
        sc.preflight(scenario)
    except sc.CannotRun as exc:
        require(False, exc.message)


def repro(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    status = main(["repro", *map(str, args)])
    out, err = capsys.readouterr()
    return status, out, err


# ------------------------------------------------------------------------------------- shipped scenarios
def test_scenarios_are_shipped() -> None:
    """One per reproduction of the samples: Python (the seeds among them) and Node.js."""
    names = {p.relative_to(SCENARIOS).as_posix() for p in SHIPPED}
    python = {f"python/{name}.toml" for name in (
        "asyncpg_pool_broken", "asyncpg_pool_fixed", "aiomysql_pool_broken", "aiomysql_pool_fixed",
        "asyncpg_thread_loop_broken", "asyncpg_thread_loop_fixed", "aurora_wakeup_broken", "aurora_wakeup_fixed",
        "nat_idle_drop_broken", "nat_idle_drop_fixed", "init_side_effect_broken", "init_side_effect_fixed",
        "warm_state_leak_leaky", "warm_state_leak_fixed", "relay_consumer", "s3_relay_consumer_broken",
        "s3_relay_consumer_fixed")}
    node = {f"node/sequelize_{name}.toml" for name in (
        "counter", "stale_pool_fin", "stale_pool_rst", "never_empty", "acquire_timeout", "unhandled_rejection",
        "connect_etimedout", "recommended", "counter_fixed", "counter_virtual", "counter_virtual_fixed")}
    node |= {f"node/pg_{case}_{variant}.toml" for case in ("idle_pool", "nat_idle_drop")
             for variant in ("broken", "fixed", "virtual_broken", "virtual_fixed")}
    assert python | node <= names
    samples = {p.parent.relative_to(ROOT / "samples").as_posix() for p in (ROOT / "samples").rglob("*")
               if p.name in ("app.py", "index.js") and "node_modules" not in p.parts}
    # A handler may name a folder of its code directory (sequelize's "counter/index.handler"): that folder's sample.
    used = {(fn.code_dir / fn.settings["handler"]).parent.relative_to(ROOT / "samples").as_posix()
            for path in SHIPPED for fn in sc.load(path).functions.values()}
    assert samples - used == {"python/hello"}  # every sample but the greeting has a scenario


@pytest.mark.parametrize("path", SHIPPED, ids=lambda p: p.relative_to(SCENARIOS).as_posix())
def test_shipped_scenario_matches_the_schema_and_stays_small(path: Path) -> None:
    data = tomllib.loads(path.read_text())
    assert schema_errors(data, SCHEMA) == []
    scenario = sc.load(path)
    # A race asks for a share of more runs; anything else is checked on a few: more runs are for --runs.
    assert scenario.runs <= (3 if scenario.required_fraction == 1 else 8), "keep shipped scenarios quick"
    assert scenario.description


@pytest.mark.timeout(180)
@pytest.mark.parametrize("path", SHIPPED, ids=lambda p: p.relative_to(SCENARIOS).as_posix())
def test_shipped_scenario_reproduces(path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Every run goes through every step; the expectation holds on every run, or, where the file says the outcome
    is a race, on the fraction of runs it asks for."""
    scenario = sc.load(path)
    require_prerequisites(scenario)
    status, out, err = repro(capsys, path, "--json")
    report = json.loads(out)
    assert status == 0, (report["results"], err)
    assert report["passed"] is True and report["runs"] == scenario.runs
    assert report["reproduced"] >= math.ceil(scenario.required_fraction * scenario.runs - 1e-9)
    assert not any(r["failure"] and "aborted" in str(r["steps"][-1]["outcome"]) for r in report["results"])
    strict = scenario.required_fraction == 1
    checked = {s.expect.invoke for s in scenario.steps if s.expect is not None}
    for step, spec in zip(report["steps"], scenario.steps, strict=True):
        assert step["runs"] == scenario.runs, report["results"]  # no run was cut short
        if spec.action == "expect" and strict:
            assert step["outcomes"] == {"held": scenario.runs}, report["results"]
        elif spec.action == "invoke" and strict and spec.key not in checked:
            assert len(step["outcomes"]) == 1, step  # what no expect step looks at: the same on every run
    assert "invoke" in report["timeline"]
    if strict:
        assert report["timeline_run"] == scenario.runs
        assert [line for line in err.splitlines() if line.startswith("run ")] == [
            f"run {n}/{scenario.runs}: reproduced" for n in range(1, scenario.runs + 1)
        ]


# ----------------------------------------------------------------------------------- replaying (no database)
def write(tmp_path: Path, text: str, name: str = "scenario.toml") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


BASIC_SCENARIO = f"""
description = "two invocations with a freeze between them"
runs = 2

[functions.fn]
code_dir = "{BASIC}"
maximum_retry_attempts = 0

[[steps]]
invoke = {{ as = "first", payload = {{ action = "echo", n = 1 }} }}

[[steps]]
stay_frozen = 0.2

[[steps]]
invoke = {{ as = "second", payload = {{ action = "raise", detail = "boom" }} }}

[[steps]]
invoke_async = {{ as = "later", payload = {{ action = "raise", detail = "async" }} }}

[[steps]]
expect = {{ invoke = "first", ok = true, payload = '"n": 1', log = "echo for " }}

[[steps]]
expect = {{ invoke = "second", error_type = "ValueError", message = "^bad input: boom$" }}

[[steps]]
expect = {{ invoke = "later", error_type = "ValueError", message = "async" }}
"""


@pytest.mark.timeout(60)
def test_repro_replays_every_run_and_renders_a_table(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    status, out, err = repro(capsys, write(tmp_path, BASIC_SCENARIO))
    assert status == 0, out + err
    assert "reproduced 2/2 (required: all)" in out
    assert re.search(r"^invoke#1 \(first\)\s+ok 2/2\s+\S+ ms\s+\S+ ms$", out, re.M), out
    assert re.search(r"^stay_frozen#1 \(0.2 s\)\s+frozen 2/2\s+\d+ ms", out, re.M), out
    assert re.search(r"^invoke#2 \(second\)\s+ValueError 2/2", out, re.M), out
    assert re.search(r"^invoke_async#1 \(later\)\s+queued 2/2", out, re.M), out
    assert re.search(r"^expect#3 → later\s+held 2/2$", out, re.M), out
    assert "timeline of run 2 (the last run):" in out
    assert err.splitlines()[-2:] == ["run 1/2: reproduced", "run 2/2: reproduced"]


@pytest.mark.timeout(60)
def test_an_expectation_that_does_not_hold_exits_1_and_shows_that_run(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    text = BASIC_SCENARIO.replace('error_type = "ValueError", message = "^bad input: boom$"', 'ok = true')
    status, out, err = repro(capsys, write(tmp_path, text), "--runs", "1")
    assert status == 1
    assert "reproduced 0/1 (required: all): fewer runs than required" in out
    assert "run 1: expect#2 → second: expected success, got ValueError" in out
    assert "timeline of run 1 (the first run where the expectation did not hold):" in out
    assert "run 1/1: not reproduced: expect#2 → second: expected success, got ValueError" in err


@pytest.mark.timeout(60)
def test_required_fraction_lets_a_partial_reproduction_pass(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    text = BASIC_SCENARIO.replace("runs = 2", "runs = 1\nrequired_fraction = 0.5").replace(
        'error_type = "ValueError", message = "^bad input: boom$"', "ok = true")
    status, out, _ = repro(capsys, write(tmp_path, text), "--runs", "2", "--json")
    assert status == 1  # 0 of 2 is below one half
    assert json.loads(out)["reproduced"] == 0
    text = text.replace('{ invoke = "second", ok = true }', '{ invoke = "first", ok = true }')
    status, out, _ = repro(capsys, write(tmp_path, text), "--runs", "2", "--json")
    assert status == 0 and json.loads(out)["passed"] is True


@pytest.mark.timeout(60)
def test_trace_has_a_track_per_environment_and_a_frozen_slice_between_two_invocations(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    trace_path = tmp_path / "trace.json"
    status, out, _ = repro(capsys, write(tmp_path, BASIC_SCENARIO), "--runs", "1", "--json", "--trace", trace_path)
    assert status == 0
    report = json.loads(out)
    trace = json.loads(trace_path.read_text())
    events = trace["traceEvents"]
    assert trace["displayTimeUnit"] == "ms"
    names = {(e["pid"], e["tid"]): e["args"]["name"] for e in events if e["name"] == "thread_name"}
    (env_track,) = [track for track, name in names.items() if name.startswith("fn-")]
    slices = sorted((e for e in events if e["ph"] == "X" and e["cat"] == "state" and (e["pid"], e["tid"]) == env_track),
                    key=lambda e: e["ts"])
    assert {"initializing", "invoking", "frozen"} <= {e["name"] for e in slices}
    invoking = [e for e in slices if e["name"] == "invoking"]
    first_end = invoking[0]["ts"] + invoking[0]["dur"]
    frozen = [e for e in slices if e["name"] == "frozen" and first_end <= e["ts"] < invoking[1]["ts"]]
    assert frozen and frozen[0]["dur"] >= 150_000  # stay_frozen 0.2 s, in µs
    assert frozen[0]["ts"] + frozen[0]["dur"] <= invoking[1]["ts"] + 1
    request_ids = {s["request_id"] for s in report["results"][0]["steps"] if s["request_id"]}
    instants = [e for e in events if e["ph"] == "i" and e["cat"] == "invocation"]
    assert request_ids <= {e["args"]["request_id"] for e in instants}
    assert {"ok", "ValueError"} <= {e["name"].split()[0] for e in instants}
    assert invoking[0]["args"]["outcome"] == "ok" and invoking[1]["args"]["outcome"] == "ValueError"
    steps = [e["name"] for e in events if e["ph"] == "X" and e["cat"] == "step"]
    assert steps[:3] == ["invoke#1 (first)", "stay_frozen#1 (0.2 s)", "invoke#2 (second)"]


# ------------------------------------------------------------------------------------------ the checker
def problems(tmp_path: Path, text: str, name: str = "bad.toml") -> list[str]:
    (tmp_path / "fn").mkdir(exist_ok=True)
    path = write(tmp_path, text, name)
    with pytest.raises(sc.ScenarioError) as raised:
        sc.load(path)
    return [p.removeprefix(f"{path}:") for p in raised.value.problems]


GOOD = """\
runs = 1

[databases.pg]
kind = "postgresql"
idle_session_timeout_s = 0.5

[functions.app]
code_dir = "fn"
upstreams = { DB = "pg" }

[[steps]]
invoke = { as = "first" }

[[steps]]
expect = { invoke = "first", ok = true }
"""


def test_a_good_file_loads(tmp_path: Path) -> None:
    (tmp_path / "fn").mkdir()
    scenario = sc.load(write(tmp_path, GOOD))
    assert scenario.functions["app"].upstreams == {"DB": "pg"}
    assert scenario.functions["app"].code_dir == (tmp_path / "fn").resolve()
    assert [s.label for s in scenario.steps] == ["invoke#1 (first)", "expect#1 → first"]
    assert scenario.steps[0].line == 11


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        (("runs = 1", "runs = 0"), "1: runs: must be >= 1, not 0"),
        (("code_dir", "timout = 3\ncode_dir"), "8: functions.app.timout: unknown key; did you mean 'timeout'?"),
        (('code_dir = "fn"', 'code_dir = "nowhere"'), "8: functions.app.code_dir: code directory "),
        (('upstreams = { DB = "pg" }', 'upstreams = { DB = "pgx" }'),
         "9: functions.app.upstreams.DB: 'pgx' is neither a database (known: pg) nor host:port"),
        (("idle_session_timeout_s = 0.5", "wait_timeout_s = 1"),
         "5: databases.pg.wait_timeout_s: a setting of mysql databases, not of postgresql ones"),
        (('invoke = { as = "first" }', 'invoke = { as = "first", fn = "app" }'),
         "12: step 1 (invoke).fn: unknown key; known: function, payload, as"),
        (('invoke = "first", ok', 'invoke = "frist", ok'),
         "15: step 2 (expect).invoke: no earlier invoke step is named 'frist' (named: first)"),
        (("ok = true }", 'ok = true, message = "(" }'), "15: step 2 (expect).message: not a valid regular expression"),
        (("ok = true }", 'ok = true, error_type = "X" }'), "15: step 2 (expect).ok: ok = true contradicts"),
        (('[[steps]]\nexpect', '[[steps]]\nstay_frozen = -1\n\n[[steps]]\nexpect'),
         "15: step 2 (stay_frozen): must be > 0, not -1"),
        (('[[steps]]\nexpect', '[[steps]]\nstay_frozen = 1\ninvoke = {}\n\n[[steps]]\nexpect'),
         "14: step 2: a step is a table with exactly one action"),
        (('[[steps]]\nexpect', '[[steps]]\nkill_db_connections = "mysql"\n\n[[steps]]\nexpect'),
         "15: step 2 (kill_db_connections): a database's name or true (all); known: pg, not 'mysql'"),
        (('[[steps]]\nexpect', '[[steps]]\nfault = { add = "lag", type = "latency", settings = { latency_ms = "x" } }'
                               '\n\n[[steps]]\nexpect'),
         "15: step 2 (fault).settings.latency_ms: expected a number, not a string"),
        (('[[steps]]\nexpect', '[[steps]]\nfault = { add = "lag", type = "latency" }\n\n[[steps]]\nexpect'),
         "15: step 2 (fault).settings.latency_ms: required by the latency toxic"),
        (('[[steps]]\nexpect', '[[steps]]\nfault = { remove = "lag" }\n\n[[steps]]\nexpect'),
         "15: step 2 (fault).remove: no fault 'lag' is in place at this step"),
        (('[[steps]]\nexpect = { invoke = "first", ok = true }', '[[steps]]\ninvoke = {}'),
         "steps: no expect step"),
        (("[[steps]]\ninvoke", "[faults.nat]\ntype = \"idle_drop\"\nsettings = { idle = 1 }\n\n[[steps]]\ninvoke"),
         "13: faults.nat.settings.idle: unknown setting of the idle_drop toxic; known: idle_s, count_keepalives"),
        # services, database setup, placeholders
        (("[functions.app]", '[services.legacy]\ncommand = ["srv"]\n\n[functions.app]'),
         "7: services.legacy: how does it tell it is ready? Give a ready_line"),
        (("[functions.app]", '[services.legacy]\ncommand = ["${python}", "x.py", "${prot}"]\n\n[functions.app]'),
         "8: services.legacy.command[2]: ${prot}: unknown placeholder here; known: ${port}, ${python}"),
        (("[functions.app]", '[services.legacy]\ncommand = ["srv", "${port}"]\nready_timeout = 0\n\n[functions.app]'),
         "9: services.legacy.ready_timeout: must be > 0, not 0"),
        (('code_dir = "fn"', 'code_dir = "fn"\nenv = { ADDR = "${services.legcy.address}" }'),
         "9: functions.app.env.ADDR: ${services.legcy.address}: no service 'legcy' is declared"),
        (('upstreams = { DB = "pg" }', 'upstreams = { DB = "pg close=fn" }'),
         "9: functions.app.upstreams.DB: 'pg close=fn' is neither a database (known: pg) nor host:port"),
        (('kind = "postgresql"', 'kind = "postgresql"\nsetup = ["CREATE TABLE q (id int)", 3]'),
         "5: databases.pg.setup[1]: expected a SQL statement (a non-empty string), not an integer"),
        # the new steps
        (('[[steps]]\nexpect', '[[steps]]\nsql = { database = "pgx", run = "SELECT 1" }\n\n[[steps]]\nexpect'),
         "15: step 2 (sql).database: no database 'pgx'; known: pg"),
        (('[[steps]]\nexpect', '[[steps]]\nawait_async = "ap"\n\n[[steps]]\nexpect'),
         "15: step 2 (await_async): a function's name, true (all), or { function, timeout }; known: app, not 'ap'"),
        (('expect = { invoke = "first", ok = true }', 'expect = { query = "SELECT 1" }'),
         "15: step 2 (expect).equals: required"),
        (('expect = { invoke = "first", ok = true }', 'expect = { query = "SELECT 1", equals = 1, ok = true }'),
         "15: step 2 (expect).ok: not with query: an expect step checks an invocation or a query's result"),
        (('expect = { invoke = "first", ok = true }', 'expect = { invoke = "first", equals = 1 }'),
         "15: step 2 (expect).equals: only with query"),
        (("ok = true }", 'ok = true, not_log = "${invoke.frist.request_id}" }'),
         "15: step 2 (expect).not_log: ${invoke.frist.request_id}: no earlier invoke step is named 'frist' (named: "
         "first)"),
    ],
)
def test_problems_name_the_line_and_the_field(tmp_path: Path, change: tuple[str, str], expected: str) -> None:
    old, new = change
    assert old in GOOD
    found = problems(tmp_path, GOOD.replace(old, new, 1))
    assert any(p.startswith(expected) or (not expected[0].isdigit() and expected in p) for p in found), found


def test_every_problem_is_reported_at_once_in_line_order(tmp_path: Path) -> None:
    text = GOOD.replace("runs = 1", "runs = 0").replace('code_dir = "fn"', 'code_dir = "fn"\nmemory = 64').replace(
        'as = "first" }', 'as = "first", payload = 3, extra = 1 }')
    found = problems(tmp_path, text)
    assert [p.split(":")[0] for p in found] == ["1", "9", "13"], found


def test_lines_are_found_in_subtables_and_arrays_of_inline_tables(tmp_path: Path) -> None:
    text = GOOD.replace('[[steps]]\ninvoke = { as = "first" }', '[[steps]]\n[steps.invoke]\nas = "first"\n'
                        'payload = { a = 1 }\nfunction = "nope"')
    assert problems(tmp_path, text) == ["15: step 1 (invoke).function: no function 'nope'; known: app"]
    inline = 'steps = [\n  { invoke = { as = "first" } },\n  { stay_frozen = 0 },\n  { expect = { ok = true } },\n]\n'
    assert problems(tmp_path, inline + GOOD.split("[[steps]]")[0]) == ["3: step 2 (stay_frozen): must be > 0, not 0"]


def test_a_toml_syntax_error_names_its_line(tmp_path: Path) -> None:
    assert problems(tmp_path, "runs = 1\n[functions.app\n") == [
        "2: not valid TOML: Expected ']' at the end of a table declaration"
    ]


def test_a_bad_file_exits_2_with_the_problems_on_stderr(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "fn").mkdir()
    path = write(tmp_path, GOOD.replace("runs = 1", "runs = 0"))
    status, out, err = repro(capsys, path)
    assert (status, out) == (2, "")
    assert err == f"{path}:1: runs: must be >= 1, not 0\n"
    status, _, err = repro(capsys, tmp_path / "missing.toml")
    assert status == 2 and "cannot read the scenario file" in err


def test_an_unreachable_database_exits_2_and_says_how_to_fix_it(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "fn").mkdir()
    with socket.socket() as probe:  # a port nobody listens on: taken from the kernel, then let go
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    monkeypatch.setenv("LAMBDA_FREEZE_PG_DSN", f"postgresql://postgres@127.0.0.1:{port}/test")
    status, out, err = repro(capsys, write(tmp_path, GOOD))
    assert (status, out) == (2, "")
    assert f"PostgreSQL at 127.0.0.1:{port} is not reachable" in err and "LAMBDA_FREEZE_PG_DSN" in err


def test_a_function_that_cannot_start_exits_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "fn").mkdir()
    text = 'runs = 1\n[functions.app]\ncode_dir = "fn"\nruntime = "provided"\n[[steps]]\ninvoke = {}\n' \
           "[[steps]]\nexpect = { ok = true }\n"
    status, out, err = repro(capsys, write(tmp_path, text))
    assert (status, out) == (2, "")
    assert "function app: Couldn't find valid bootstrap(s)" in err


def test_yaml_scenarios_are_checked_like_toml(tmp_path: Path) -> None:
    # pyyaml is a dependency of the project: nothing to skip
    (tmp_path / "fn").mkdir()
    text = "runs: 1\nfunctions:\n  app:\n    code_dir: fn\nsteps:\n  - invoke: {as: first}\n  - stay_frozen: -2\n" \
           "  - expect: {ok: true}\n"
    assert problems(tmp_path, text, "bad.yaml") == ["7: step 2 (stay_frozen): must be > 0, not -2"]
    assert sc.load(write(tmp_path, text.replace("-2", "1"), "good.yaml")).steps[1].seconds == 1.0


# ----------------------------------------------------------------- schema.json and the checker agree
def schema_errors(value: Any, schema: Any, root: dict[str, Any] | None = None, at: str = "") -> list[str]:
    """The JSON Schema (2020-12) keywords schema.json uses, evaluated independently of the checker."""
    root = SCHEMA if root is None else root
    if schema is True:
        return []
    if schema is False:
        return [f"{at}: not allowed"]
    errors: list[str] = []
    if "$ref" in schema:
        errors += schema_errors(value, root["$defs"][schema["$ref"].removeprefix("#/$defs/")], root, at)
    kinds = schema.get("type")
    if kinds is not None:
        kinds = kinds if isinstance(kinds, list) else [kinds]
        if not any(_is(value, kind) for kind in kinds):
            return [*errors, f"{at}: not {kinds}"]
    if "enum" in schema and not any(_same(value, v) for v in schema["enum"]):
        errors.append(f"{at}: not one of {schema['enum']}")
    if "const" in schema and not _same(value, schema["const"]):
        errors.append(f"{at}: not {schema['const']!r}")
    if _is(value, "number"):
        for keyword, bad in (("minimum", lambda x, y: x < y), ("maximum", lambda x, y: x > y),
                             ("exclusiveMinimum", lambda x, y: x <= y), ("exclusiveMaximum", lambda x, y: x >= y)):
            if keyword in schema and bad(value, schema[keyword]):
                errors.append(f"{at}: {keyword} {schema[keyword]}")
    if isinstance(value, str) and "pattern" in schema and not re.search(schema["pattern"], value):
        errors.append(f"{at}: does not match {schema['pattern']}")
    if isinstance(value, dict):
        errors += [f"{at}.{key}: required" for key in schema.get("required", []) if key not in value]
        if len(value) < schema.get("minProperties", 0) or len(value) > schema.get("maxProperties", len(value)):
            errors.append(f"{at}: number of properties")
        properties = schema.get("properties", {})
        for key, item in value.items():
            if "propertyNames" in schema:
                errors += schema_errors(key, schema["propertyNames"], root, f"{at}.{key}(name)")
            if key in properties:
                errors += schema_errors(item, properties[key], root, f"{at}.{key}")
            elif "additionalProperties" in schema:
                errors += schema_errors(item, schema["additionalProperties"], root, f"{at}.{key}")
    if isinstance(value, list):
        if len(value) < schema.get("minItems", 0):
            errors.append(f"{at}: minItems")
        for index, item in enumerate(value):
            errors += schema_errors(item, schema.get("items", True), root, f"{at}[{index}]")
        if "contains" in schema and not any(not schema_errors(item, schema["contains"], root) for item in value):
            errors.append(f"{at}: contains")
    for sub in schema.get("allOf", []):
        errors += schema_errors(value, sub, root, at)
    if "anyOf" in schema and all(schema_errors(value, sub, root, at) for sub in schema["anyOf"]):
        errors.append(f"{at}: anyOf")
    if "oneOf" in schema and sum(not schema_errors(value, sub, root, at) for sub in schema["oneOf"]) != 1:
        errors.append(f"{at}: oneOf")
    if "not" in schema and not schema_errors(value, schema["not"], root, at):
        errors.append(f"{at}: not")
    if "if" in schema:
        branch = "then" if not schema_errors(value, schema["if"], root, at) else "else"
        errors += schema_errors(value, schema.get(branch, True), root, at)
    return errors


def _is(value: Any, kind: str) -> bool:
    number = isinstance(value, int | float) and not isinstance(value, bool)
    return {
        "object": isinstance(value, dict), "array": isinstance(value, list), "string": isinstance(value, str),
        "boolean": isinstance(value, bool), "null": value is None, "number": number,
        "integer": number and float(value).is_integer(),
    }[kind]


def _same(a: Any, b: Any) -> bool:
    return bool(a == b and isinstance(a, bool) == isinstance(b, bool))


def example(**changes: Any) -> dict[str, Any]:
    """A valid scenario, changed: ``example(runs=0)``, ``example(fn={"memory": 64})``, ``example(steps=[...])``."""
    data: dict[str, Any] = {
        "runs": 2,
        "databases": {"pg": {"kind": "postgresql", "idle_session_timeout_s": 0.5},
                      "my": {"kind": "mysql", "wait_timeout_s": 1}},
        "functions": {"app": {"code_dir": "fn", "upstreams": {"DB": "pg"}}},
        "steps": [{"invoke": {"as": "first"}}, {"expect": {"ok": True}}],
    }
    for key, value in changes.items():
        if key == "fn":
            data["functions"]["app"].update(value)
        elif key == "drop":
            data.pop(value)
        else:
            data[key] = value
    return data


QUEUES = {"dlq": {}, "in": {"visibility_timeout": 5, "dead_letter_queue": "dlq", "max_receive_count": 2},
          "in.fifo": {"fifo": True}}
BUCKETS = {"files": {"queue_notifications": [{"queue": "in", "events": ["s3:ObjectCreated:*"]}]}, "plain": {}}


def steps(*middle: dict[str, Any]) -> list[dict[str, Any]]:
    return [{"invoke": {"as": "first"}}, *middle, {"expect": {"ok": True}}]


VALID = [
    example(),
    example(description="d", links=["x"], required_fraction=0.5, freezer="sigstop"),
    example(fn={"handler": "app.handler", "runtime": "python3.12", "timeout": 6, "memory": 256, "init_timeout": 2,
                "freezer": "none", "env": {"A": "1", "B": 2, "C": True}, "databases": {"OTHER": "my"},
                "reserved_concurrency": 1, "placement": "lru", "idle_timeout": 5, "max_age": 60,
                "max_invocations": 3, "recycle_jitter": 0.5, "prewarm": 1, "replace_before_retire": True,
                "reset_on_timeout": False, "maximum_retry_attempts": 0, "maximum_event_age": 60,
                "retry_delays": [1, 2], "detect_leaks": True}),
    example(faults={"nat": {"type": "idle_drop", "settings": {"idle_s": 1, "count_keepalives": False},
                            "direction": "both", "function": "app", "upstream": "DB"},
                    "slow": {"type": "while_frozen"}, "cap": {"type": "limit_connections",
                                                               "settings": {"max_connections": 1}}}),
    example(steps=steps({"invoke_async": {"payload": [1, 2]}}, {"stay_frozen": 0.5},
                        {"fault": {"add": "lag", "type": "latency", "settings": {"latency_ms": 5, "jitter_ms": 1}}},
                        {"fault": {"remove": "lag"}}, {"kill_db_connections": True}, {"kill_db_connections": "pg"},
                        {"expect": {"invoke": "first", "error_type": "E", "message": "m", "log": "l",
                                    "payload": "p"}})),
    example(databases={"pg": {"kind": "postgresql", "idle_in_transaction_session_timeout_s": 1,
                              "statement_timeout_ms": 100, "connection_limit": 0, "settings": {"work_mem": "4MB"}},
                       "my": {"kind": "mysql", "max_connections": 2}}),
    example(databases={"pg": {"kind": "postgresql", "setup": "CREATE TABLE q (id int)"},
                       "my": {"kind": "mysql", "setup": ["CREATE TABLE q (id int)", "INSERT INTO q VALUES (1)"]}}),
    example(services={"one": {"command": ["${python}", "server.py"], "cwd": ".", "ready_line": "^port (?P<port>\\d+)",
                              "ready_timeout": 5},
                      "two": {"command": ["srv", "--port", "${port}", "--upstream", "${services.one.address}"],
                              "env": {"DB_USER": "${databases.pg.user}", "N": 1, "$${literal}": "$${x}"}},
                      "quiet": {"command": ["x"], "ready_line": "started"}},
            fn={"env": {"ADDR": "${services.two.address}", "H": "${services.one.host}:${services.one.port}",
                        "DSN": "postgresql://${databases.pg.user}@${databases.pg.host}:${databases.pg.port}/"
                               "${databases.pg.name}"},
                "upstreams": {"DB": "pg close=fin", "LEGACY": "one", "OTHER": "127.0.0.1:7 close=rst"}}),
    example(databases={"pg": {"kind": "postgresql"}},
            steps=steps({"sql": "INSERT INTO q VALUES (1)"}, {"sql": ["SELECT 1", "SELECT 2"]},
                        {"sql": {"database": "pg", "run": "SELECT 1"}}, {"await_async": True}, {"await_async": "app"},
                        {"await_async": {"function": "app", "timeout": 5}}, {"await_async": {}},
                        {"expect": {"query": "SELECT count(*) FROM q", "equals": 0}},
                        {"expect": {"query": "SELECT 1, 'a'", "database": "pg", "equals": [[1, "a"]]}},
                        {"expect": {"invoke": "first", "not_log": "Init Duration|${invoke.first.request_id}",
                                    "not_payload": "${invoke.first.payload.items.0.id}", "log": "$${x}"}})),
    example(queues=QUEUES, fn={"sqs": [{"queue": "in", "batch_size": 5, "maximum_batching_window": 1,
                                        "report_batch_item_failures": True, "maximum_concurrency": 2,
                                        "enabled": True}], "env": {"DIR": "${run.dir}"}},
            steps=steps({"send_message": {"queue": "in", "body": {"id": 1}, "count": 3, "attributes": {"a": "b"}}},
                        {"send_message": {"queue": "in.fifo", "bodies": ["x", [1]], "group_id": "g"}},
                        {"await_queue": {"queue": "in", "drained": True, "processed": 2, "in_dlq": 1, "timeout": 5}},
                        {"expect": {"queue": "in", "processed": 2, "duplicated": 0, "in_queue": 0, "in_dlq": 1}},
                        {"expect": {"queue": "in", "duplicated": {"at_least": 1}}})),
    example(queues=QUEUES, buckets=BUCKETS,
            fn={"schedules": [{"name": "Tick", "expression": "rate(5 minutes)", "enabled": False},
                              {"expression": "cron(0 12 * * ? *)", "input": "{}"}]},
            steps=steps({"put_object": {"bucket": "files", "key": "in/{n}.txt", "body": "x", "count": 3}},
                        {"put_object": {"bucket": "plain", "key": "k"}}, {"trigger": "app.Tick"},
                        {"trigger": "app.Schedule2"}, {"expect": {"ok": True}})),
]

INVALID = [
    example(buckets={"Bad_Name": {}}), example(buckets={"files": {"x": 1}}),
    example(queues=QUEUES, buckets={"files": {"queue_notifications": [{"events": ["s3:ObjectCreated:*"]}]}}),
    example(fn={"schedules": [{"name": "x"}]}), example(fn={"schedules": [{"expression": "rate(1 minute)", "y": 1}]}),
    example(queues=QUEUES, buckets=BUCKETS, steps=steps({"put_object": {"bucket": "files"}})),
    example(steps=steps({"trigger": 1})),
    example(queues={"a b": {}}), example(queues={"q": {"visibility_timeout": -1}}), example(queues={"q": {"x": 1}}),
    example(queues=QUEUES, fn={"sqs": [{"batch_size": 1}]}),
    example(queues=QUEUES, fn={"sqs": [{"queue": "in", "batch_size": 0}]}),
    example(queues=QUEUES, steps=steps({"send_message": {"queue": "in"}})),
    example(queues=QUEUES, steps=steps({"send_message": {"queue": "in", "body": "x", "bodies": ["y"]}})),
    example(queues=QUEUES, steps=steps({"await_queue": {"queue": "in", "drained": False}})),
    example(queues=QUEUES, steps=steps({"expect": {"queue": "in", "processed": -1}})),
    example(queues=QUEUES, steps=steps({"expect": {"queue": "in", "processed": {"most": 1}}})),
    example(drop="functions"), example(drop="steps"), example(extra=1), example(runs=0), example(runs=1.5),
    example(required_fraction=0), example(required_fraction=1.5), example(freezer="x"), example(links="x"),
    example(functions={}), example(functions={"a b": {"code_dir": "fn"}}), example(functions={"app": {}}),
    example(fn={"timeot": 3}), example(fn={"timeout": 0}), example(fn={"timeout": 901}), example(fn={"memory": 64}),
    example(fn={"memory": 128.5}), example(fn={"runtime": "python2"}), example(fn={"env": {"A": [1]}}),
    example(fn={"upstreams": {"db": "pg"}}), example(fn={"databases": {"DB": "p g"}}),
    example(fn={"placement": "x"}), example(fn={"recycle_jitter": 1}), example(fn={"maximum_retry_attempts": 3}),
    example(fn={"retry_delays": [-1]}), example(fn={"detect_leaks": "yes"}), example(fn={"prewarm": -1}),
    example(databases={"pg": {"idle_session_timeout_s": 1}}), example(databases={"pg": {"kind": "oracle"}}),
    example(databases={"pg": {"kind": "postgresql", "wait_timeout_s": 1}}),
    example(databases={"pg": {"kind": "mysql", "wait_timeout_s": 0}}),
    example(databases={"pg": {"kind": "mysql", "idle_session_timeout_s": 1}}),
    example(databases={"pg": {"kind": "postgresql", "connection_limit": -1}}),
    example(faults={"x": {"type": "nope"}}), example(faults={"x": {"type": "latency"}}),
    example(faults={"x": {"type": "latency", "settings": {}}}),
    example(faults={"x": {"type": "latency", "settings": {"latency_ms": 1, "extra": 1}}}),
    example(faults={"x": {"type": "while_frozen", "settings": {"mode": "x"}}}),
    example(faults={"x": {"type": "noop", "direction": "sideways"}}),
    example(faults={"x": {"type": "limit_connections", "settings": {"max_connections": 1.5}}}),
    example(faults={"x": {"type": "idle_drop", "settings": {"idle_s": 1, "count_keepalives": "no"}}}),
    example(faults={"x": {"type": "latency", "settings": {"latency_ms": -1}}}),
    example(steps=[]), example(steps=steps({"invoke": {}, "stay_frozen": 1})), example(steps=steps({"wait": 1})),
    example(steps=steps({})), example(steps=steps({"invoke": {"fn": "app"}})),
    example(steps=steps({"invoke": {"as": "1st"}})), example(steps=steps({"stay_frozen": 0})),
    example(steps=steps({"stay_frozen": "1"})), example(steps=steps({"fault": {"type": "noop"}})),
    example(steps=steps({"fault": {"add": "x", "type": "noop"}}, {"fault": {"remove": "x", "type": "noop"}})),
    example(steps=steps({"kill_db_connections": False})), example(steps=steps({"kill_db_connections": 3})),
    example(steps=steps({"expect": {}})), example(steps=steps({"expect": {"invoke": "first"}})),
    example(steps=steps({"expect": {"ok": "yes"}})), example(steps=[{"invoke": {}}]),
    example(services={"s": {"ready_line": "x"}}), example(services={"s": {"command": [], "ready_line": "x"}}),
    example(services={"s": {"command": "srv ${port}"}}), example(services={"s": {"command": ["x"], "shell": True}}),
    example(services={"s": {"command": ["x", "${port}"], "ready_timeout": 0}}),
    example(services={"s": {"command": ["x", "${port}"], "env": {"A": [1]}}}),
    example(services={"s b": {"command": ["x", "${port}"]}}), example(services=["x"]),
    example(databases={"pg": {"kind": "postgresql", "setup": 3}}),
    example(databases={"pg": {"kind": "postgresql", "setup": []}}),
    example(databases={"pg": {"kind": "postgresql", "setup": [""]}}),
    example(databases={"pg": {"kind": "mysql", "setup": ["  "]}}),
    example(steps=steps({"sql": 3})), example(steps=steps({"sql": {}})), example(steps=steps({"sql": {"run": []}})),
    example(steps=steps({"sql": {"run": "x", "extra": 1}})), example(steps=steps({"sql": {"database": 1, "run": "x"}})),
    example(steps=steps({"await_async": False})), example(steps=steps({"await_async": 3})),
    example(steps=steps({"await_async": {"timeout": 0}})), example(steps=steps({"await_async": {"function": "a b"}})),
    example(steps=steps({"await_async": {"wait": 1}})),
    example(steps=steps({"expect": {"query": "SELECT 1"}})),
    example(steps=steps({"expect": {"query": "SELECT 1", "equals": 1, "ok": True}})),
    example(steps=steps({"expect": {"equals": 1}})), example(steps=steps({"expect": {"query": " ", "equals": 1}})),
    example(steps=steps({"expect": {"query": "SELECT 1", "database": "a b", "equals": 1}})),
    example(steps=steps({"expect": {"not_log": 3}})), example(steps=steps({"expect": {"invoke": "first",
                                                                                       "not_payload": ["x"]}})),
]

# Problems only the checker can see: they need the file system, or what other parts of the file say.
SEMANTIC = [
    example(fn={"code_dir": "nowhere"}), example(fn={"upstreams": {"DB": "nowhere"}}),
    example(fn={"databases": {"DB": "my"}}),  # DB names pg as an upstream
    example(steps=steps({"expect": {"invoke": "nope", "ok": True}})),
    example(steps=steps({"fault": {"remove": "nope"}})), example(steps=steps({"kill_db_connections": "nope"})),
    example(steps=steps({"expect": {"message": "(", "ok": False}})),
    example(steps=steps({"invoke": {"function": "nope"}})), example(steps=steps({"invoke": {"as": "first"}})),
    example(steps=steps({"expect": {"ok": True, "error_type": "E"}})),
    example(faults={"x": {"type": "noop", "upstream": "CACHE"}}),
    example(fn={"env": {"AWS_REGION": "x"}}),
    # services: how it is ready, its port, its directory, what its placeholders name
    example(services={"s": {"command": ["x"]}}),
    example(services={"s": {"command": ["x", "${port}"], "ready_line": "(?P<port>\\d+)"}}),
    example(services={"s": {"command": ["x"], "ready_line": "("}}),
    example(services={"s": {"command": ["x", "${port}"], "cwd": "nowhere"}}),
    example(services={"s": {"command": ["x", "${services.t.port}", "${port}"]}, "t": {"command": ["y", "${port}"]}}),
    example(services={"s": {"command": ["x", "${prot}"], "ready_line": "up"}}),
    example(services={"s": {"command": ["x", "${databases.nope.user}", "${port}"]}}),
    example(services={"pg": {"command": ["x", "${port}"]}}),  # named as a database
    example(services={"s": {"command": ["x"], "ready_line": "up"}}, fn={"env": {"A": "${services.s.port}"}}),
    example(services={"s": {"command": ["x"], "ready_line": "up"}}, fn={"upstreams": {"DB": "pg", "S": "s"}}),
    example(fn={"env": {"A": "${services.nope.address}"}}), example(fn={"env": {"A": "${databases.nope.user}"}}),
    example(fn={"env": {"A": "${databases.pg.password}"}}), example(fn={"env": {"A": "${port}"}}),
    example(fn={"env": {"A": "${python}"}}), example(fn={"upstreams": {"DB": "pg close=never"}}),
    # steps: the databases, functions and invocations they name
    example(steps=steps({"sql": "SELECT 1"})),  # two databases: which one?
    example(steps=steps({"sql": {"database": "nope", "run": "SELECT 1"}})),
    example(steps=steps({"await_async": "nope"})), example(steps=steps({"await_async": {"function": "nope"}})),
    example(steps=steps({"expect": {"query": "SELECT 1", "equals": 1}})),
    example(steps=steps({"expect": {"query": "SELECT 1", "database": "nope", "equals": 1}})),
    example(steps=steps({"expect": {"log": "${invoke.later.request_id}"}}, {"invoke": {"as": "later"}})),
    example(steps=steps({"expect": {"payload": "${invoke.first.response}"}})),
    example(steps=steps({"expect": {"payload": "${invoke.first.request_id.x}"}})),
    example(steps=steps({"expect": {"payload": "${invoke.first.payload}"}})),
    example(steps=steps({"expect": {"payload": "${services.s.port}"}})),
    example(steps=steps({"expect": {"message": "(${invoke.first.request_id}", "ok": False}})),
    example(steps=[{"invoke_async": {"as": "a"}}, {"expect": {"payload": "x"}}]),
    example(steps=[{"invoke_async": {"as": "a"}}, {"expect": {"not_log": "x"}}]),
    # queues: what they, the mappings and the steps name
    example(queues={"q": {"dead_letter_queue": "nope", "max_receive_count": 1}}),
    example(queues={"q.fifo": {}}), example(queues={"q": {"max_receive_count": 1}}),
    example(queues=QUEUES, fn={"sqs": [{"queue": "nope"}]}), example(fn={"sqs": [{"queue": "in"}]}),
    example(queues=QUEUES, steps=steps({"send_message": {"queue": "nope", "body": "x"}})),
    example(queues=QUEUES, steps=steps({"send_message": {"queue": "in.fifo", "body": "x"}})),
    example(queues=QUEUES, steps=steps({"send_message": {"queue": "in", "body": "x", "group_id": "g"}})),
    example(queues=QUEUES, steps=steps({"await_queue": {"queue": "in"}})),
    example(queues=QUEUES, steps=steps({"await_queue": {"queue": "dlq", "in_dlq": 1}})),
    example(queues=QUEUES, steps=steps({"expect": {"queue": "in"}})),
    example(queues=QUEUES, steps=steps({"expect": {"queue": "nope", "processed": 1}})),
    # buckets and schedules: what they and the steps name
    example(queues=QUEUES, buckets={"files": {"queue_notifications": [{"queue": "nope"}]}}),
    example(queues=QUEUES, buckets=BUCKETS, steps=steps({"put_object": {"bucket": "nope", "key": "k"}})),
    example(queues=QUEUES, buckets=BUCKETS, steps=steps({"put_object": {"bucket": "files", "key": "k", "count": 2}})),
    example(fn={"schedules": [{"name": "Tick", "expression": "rate(5 minutes)"}]}, steps=steps({"trigger": "Tick"})),
    example(steps=steps({"trigger": "app.Tick"})),
]


def checker_accepts(tmp_path: Path, data: dict[str, Any]) -> bool:
    (tmp_path / "fn").mkdir(exist_ok=True)
    try:
        sc.validate(json.loads(json.dumps(data)), tmp_path / "example.toml")
    except sc.ScenarioError:
        return False
    return True


@pytest.mark.parametrize("data", VALID, ids=lambda _: "valid")
def test_schema_and_checker_accept(tmp_path: Path, data: dict[str, Any]) -> None:
    assert schema_errors(data, SCHEMA) == []
    assert checker_accepts(tmp_path, data)


@pytest.mark.parametrize("data", INVALID, ids=lambda _: "invalid")
def test_schema_and_checker_refuse(tmp_path: Path, data: dict[str, Any]) -> None:
    assert schema_errors(data, SCHEMA) != []
    assert not checker_accepts(tmp_path, data)


@pytest.mark.parametrize("data", SEMANTIC, ids=lambda _: "semantic")
def test_checker_refuses_what_no_schema_can_see(tmp_path: Path, data: dict[str, Any]) -> None:
    assert schema_errors(data, SCHEMA) == []
    assert not checker_accepts(tmp_path, data)


def test_schema_names_the_same_keys_as_the_checker_and_the_engine() -> None:
    defs = SCHEMA["$defs"]
    assert set(SCHEMA["properties"]) == set(sc.TOP_KEYS)
    assert set(defs["function"]["properties"]) == set(sc.FUNCTION_KEYS) >= set(FILE_KEYS)
    assert defs["function"]["properties"]["runtime"]["enum"] == list(RUNTIMES)
    assert defs["freezer"]["enum"] == list(CHOICES)
    for branch in defs["database"]["oneOf"]:
        assert set(branch["properties"]) == set(sc.DATABASE_KEYS[branch["properties"]["kind"]["const"]])
    assert defs["toxic"]["enum"] == list(TOXICS)
    for rule in defs["toxic_settings"]["allOf"]:
        kind = rule["if"]["properties"]["type"]["const"]
        settings = rule["then"]["properties"]["settings"]
        known = sc.toxic_settings(kind)
        assert set(settings["properties"]) == set(known), kind
        assert set(settings.get("required", [])) == {k for k, (_, required) in known.items() if required}, kind
    assert {rule["if"]["properties"]["type"]["const"] for rule in defs["toxic_settings"]["allOf"]} == set(TOXICS)
    assert set(defs["step"]["properties"]) == set(sc.ACTIONS)
    assert set(defs["expect_invocation"]["properties"]) == set(sc.EXPECT_KEYS)
    assert set(defs["expect_query"]["properties"]) == set(sc.QUERY_KEYS)
    assert set(defs["invocation"]["properties"]) == set(sc.INVOCATION_KEYS)
    assert set(defs["fault"]["properties"]) == set(sc.FAULT_KEYS)
    assert set(defs["service"]["properties"]) == set(sc.SERVICE_KEYS)
    assert set(defs["step"]["properties"]["sql"]["anyOf"][1]["properties"]) == set(sc.SQL_KEYS)
    assert set(defs["step"]["properties"]["await_async"]["anyOf"][2]["properties"]) == set(sc.AWAIT_KEYS)
    assert set(defs["step"]["properties"]["send_message"]["properties"]) == set(SEND_KEYS)
    assert set(defs["step"]["properties"]["await_queue"]["properties"]) == set(AWAIT_QUEUE_KEYS)
    assert set(defs["expect_queue"]["properties"]) == set(QUEUE_EXPECT_KEYS)
    assert set(defs["sqs_mapping"]["properties"]) == set(_SQS_KEYS)
    assert set(defs["queue"]["properties"]) == set(_QUEUE_KEYS)
    assert set(defs["schedule"]["properties"]) == set(_SCHEDULE_KEYS)
    assert set(defs["step"]["properties"]["put_object"]["properties"]) == set(PUT_KEYS)


def test_the_readme_documents_every_key() -> None:
    readme = (SCENARIOS / "README.md").read_text()
    defs = SCHEMA["$defs"]
    keys = {*SCHEMA["properties"], *defs["function"]["properties"], *defs["step"]["properties"],
            *defs["expect_invocation"]["properties"], *defs["expect_query"]["properties"],
            *defs["invocation"]["properties"], *defs["service"]["properties"], *sc.SQL_KEYS, *sc.AWAIT_KEYS,
            *defs["fault"]["properties"], "add", "remove", *TOXICS, *defs["queue"]["properties"],
            *defs["sqs_mapping"]["properties"], *defs["step"]["properties"]["send_message"]["properties"],
            *defs["step"]["properties"]["await_queue"]["properties"], *defs["expect_queue"]["properties"],
            *defs["bucket"]["properties"], *defs["schedule"]["properties"],
            *defs["step"]["properties"]["put_object"]["properties"],
            *(key for branch in defs["database"]["oneOf"] for key in branch["properties"]),
            *(key for rule in defs["toxic_settings"]["allOf"]
              for key in rule["then"]["properties"]["settings"]["properties"])}
    missing = sorted(key for key in keys if f"`{key}`" not in readme)
    assert missing == []


# ------------------------------------------------------------------------------------------ text timeline
def event(t: float, kind: str, subject: str, **detail: Any) -> TimelineEvent:
    return TimelineEvent(1000 + t, t, kind, subject, detail)


def state(t: float, old: str, new: str) -> TimelineEvent:
    return event(t, "state", "app-1", function="app", old=old, new=new, event="x")


def proxy(t: float, what: str, **detail: Any) -> TimelineEvent:
    return event(t, "proxy", "app-1", event=what, proxy="app/DB", env_id="app-1", conn_id="app-1#1", **detail)


STALE_CONNECTION = [
    event(0.0, "spawn", "app-1", function="app", reason="invoke"),
    proxy(0.20, "connect", side="client"),
    state(0.30, "initializing", "ready"), state(0.30, "ready", "invoking"),
    event(0.31, "invoke", "app-1", function="app", request_id="11111111-aaaa", error_type=None, message=None),
    state(0.31, "invoking", "responded"), state(0.32, "responded", "ready"), state(0.32, "ready", "frozen"),
    proxy(0.80, "close", side="upstream", by="upstream", how="fin"),
    proxy(0.80, "close", side="client", by="proxy", how="fin", detail="mirror"),
    state(1.32, "frozen", "invoking"),
    event(1.35, "invoke", "app-1", function="app", request_id="22222222-bbbb", error_type="ConnectionDoesNotExistError",
          message="connection was closed in the middle of operation"),
    state(1.35, "invoking", "responded"), state(1.36, "responded", "ready"), state(1.36, "ready", "frozen"),
]


def test_text_timeline_shows_the_close_while_frozen_and_the_failure_after_thaw() -> None:
    text = text_timeline(STALE_CONNECTION, width=40)
    lane = next(line for line in text.splitlines() if line.startswith("app-1 "))
    assert re.fullmatch(r"app-1  I+#\.+x\.+#?!\.?", lane), lane
    lines = text.splitlines()
    assert "  +0.800s  app-1  DB#1 closed by the server (fin) while app-1 was frozen" in lines
    assert "  +1.320s  app-1  thawed after 1.000 s frozen, invoking" in lines
    failed = lines.index("  +1.350s  app-1  invoke 22222222 → ConnectionDoesNotExistError: connection was closed in "
                         "the middle of operation")
    assert lines[failed + 1].strip() == (
        "↳ first use after thaw: DB#1 was closed by the server at +0.800s while app-1 was frozen")
    assert not any("closed by the proxy" in line for line in lines)  # the proxy passing the close on is noise


def test_text_timeline_says_when_an_invocation_survived_a_close_while_frozen() -> None:
    events = [*STALE_CONNECTION[:-4], event(1.35, "invoke", "app-1", function="app", request_id="3" * 8,
                                            error_type=None, message=None)]
    assert "this invocation still succeeded" in text_timeline(events)


def test_chrome_trace_of_synthetic_events_has_state_slices_and_connection_spans() -> None:
    trace = chrome_trace(STALE_CONNECTION)
    events = trace["traceEvents"]
    slices = [(e["name"], e["ts"], e["dur"]) for e in events if e["ph"] == "X"]
    assert slices == [("initializing", 0.0, 300000.0), ("invoking", 300000.0, 20000.0), ("frozen", 320000.0, 1e6),
                      ("invoking", 1320000.0, 40000.0)]
    assert [e["name"] for e in events if e["ph"] == "b"] == ["DB#1"]
    assert "DB#1 closed by the server (fin)" in [e["name"] for e in events if e["ph"] == "i"]
    invoking = [e for e in events if e["ph"] == "X" and e["name"] == "invoking"]
    assert invoking[1]["args"] == {"event": "x", "request_id": "22222222-bbbb",
                                   "outcome": "ConnectionDoesNotExistError"}
    json.dumps(trace)  # serialisable as it is


def test_queue_problems_name_the_line_and_the_field(tmp_path: Path) -> None:
    """The queues, a function's mappings and the queue steps: each problem at its line, with what is known."""
    text = GOOD.replace("[functions.app]", '[queues.in]\nvisibility_timeout = 5\ndead_letter_queue = "gone"\n'
                        'max_receive_count = 2\n\n[functions.app]\nsqs = [{ queue = "out" }]').replace(
        '[[steps]]\nexpect', '[[steps]]\nsend_message = { queue = "in" }\n\n[[steps]]\n'
        'await_queue = { queue = "in" }\n\n[[steps]]\nexpect = { queue = "in", lost = 1 }\n\n[[steps]]\nexpect')
    assert problems(tmp_path, text) == [
        "9: queues.in.dead_letter_queue: no queue 'gone' is declared; known: in",
        "13: functions.app.sqs[0]: queue 'out' is not declared; known: in",
        "21: step 2 (send_message): give body (one message) or bodies (an array), one of them",
        "24: step 3 (await_queue): says nothing to wait for: give drained = true, processed = N or in_dlq = N",
        "27: step 4 (expect).lost: unknown key; known: queue, processed, duplicated, in_queue, in_dlq",
    ]


def test_bucket_and_schedule_problems_name_the_line_and_the_field(tmp_path: Path) -> None:
    """The buckets, a function's schedules and the put_object and trigger steps: each problem at its line."""
    text = GOOD.replace("[functions.app]", '[queues.in]\n\n[buckets.files]\nqueue_notifications = [{ queue = "out" }]'
                        '\n\n[functions.app]\nschedules = [{ name = "Tick" }]').replace(
        '[[steps]]\nexpect', '[[steps]]\nput_object = { bucket = "gone", key = "k" }\n\n[[steps]]\n'
        'trigger = "app.Tock"\n\n[[steps]]\nexpect')
    assert problems(tmp_path, text) == [
        "10: buckets.files.queue_notifications[0].queue: no queue 'out' is declared; known: in",
        "13: functions.app.schedules[0]: 'expression' (rate(...) or cron(...)) is required",
        "21: step 2 (put_object).bucket: no bucket 'gone' is declared; known: files",
        "24: step 3 (trigger): a declared schedule's name (FUNCTION.NAME); known: none, not 'app.Tock'",
    ]

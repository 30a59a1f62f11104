"""Logs the emulator writes (in the shape of ``aws logs tail``), turned into a scenario by ``scenario from-logs``
and replayed: the frozen gaps come back within 50 ms, and the Sequelize stale pool's failure comes back while the
recommended configuration's logs replay without one. Real runtimes, real freezer, real MariaDB."""

from __future__ import annotations

import io
import textwrap
from pathlib import Path

import pytest

from conftest import require
from emulator import scenario as sc
from emulator.cli import main
from emulator.databases import MySQLUsers, mysql_dsn
from emulator.scenario.logs.read import read_logs
from emulator.scenario.logs.rebuild import rebuild
from emulator.scenario.logs.record import TailRecorder
from emulator.scenario.prerequisites import node_modules_problem
from emulator.scenario.report import Report
from emulator.scenario.runner import RunResult, run_scenario

pytestmark = pytest.mark.timeout(180)

ROOT = Path(__file__).parent.parent
BASIC = ROOT / "tests/functions/python/basic"
SEQUELIZE = ROOT / "samples/node/sequelize"
GAP_TOLERANCE_S = 0.05  # what the converter promises per gap


def _recorded(path: Path, runs: int = 1) -> tuple[list[RunResult], str]:
    """Run a scenario with every function log line recorded as ``aws logs tail`` prints it."""
    out = io.StringIO()
    results = run_scenario(sc.load(path), runs=runs, log_sink=TailRecorder(out))
    return results, out.getvalue()


def _gaps(log: Path) -> list[float]:
    lines, _, _ = read_logs([log])
    rebuilt = rebuild(lines)
    assert len(rebuilt.environments) == 1, [env.stream for env in rebuilt.environments]
    gaps = rebuilt.environments[0].gaps_s
    assert all(gap is not None for gap in gaps)
    return [gap for gap in gaps if gap is not None]


def test_the_frozen_gaps_of_recorded_logs_come_back_within_50_ms(tmp_path: Path) -> None:
    source = tmp_path / "record.toml"
    source.write_text(textwrap.dedent(f"""
        runs = 1
        [functions.basic]
        code_dir = "{BASIC}"
        handler = "app.handler"
        [[steps]]
        invoke = {{ as = "a" }}
        [[steps]]
        stay_frozen = 0.3
        [[steps]]
        invoke = {{ as = "b" }}
        [[steps]]
        stay_frozen = 0.9
        [[steps]]
        invoke = {{ as = "c", payload = {{ n = 3 }} }}
        [[steps]]
        expect = {{ invoke = "a", ok = true }}
    """))
    results, text = _recorded(source)
    assert results[0].aborted is None, results[0].aborted
    recorded = tmp_path / "recorded.log"
    recorded.write_text(text)
    scenario = tmp_path / "replay.toml"
    assert main(["scenario", "from-logs", str(recorded), "--function", str(BASIC), "--handler", "app.handler",
                 "-o", str(scenario)]) == 0
    replayed = tmp_path / "replayed.log"
    assert main(["repro", str(scenario), "--runs", "1", "--record-logs", str(replayed)]) == 0  # every outcome back
    want, got = _gaps(recorded), _gaps(replayed)
    assert len(want) == len(got) == 2
    assert want[0] == pytest.approx(0.3, abs=0.2) and want[1] == pytest.approx(0.9, abs=0.2)
    for production, local in zip(want, got, strict=True):
        assert abs(production - local) <= GAP_TOLERANCE_S, (want, got)


STALE = """
runs = 1
[databases.mysql]
kind = "mysql"
wait_timeout_s = 1
[functions.stale]
code_dir = "{code}"
handler = "{folder}/index.handler"
runtime = "nodejs20.x"
timeout = 5
env = {{ FUNCTION_TIMEOUT_MS = 5000 }}
upstreams = {{ DB = "mysql close=fin" }}
[[steps]]
invoke = {{ as = "first" }}
[[steps]]
stay_frozen = 1.5
[[steps]]
invoke = {{ as = "second" }}
[[steps]]
expect = {{ invoke = "first", ok = true }}
"""
# What the converted scenario needs beside the logs: the database and how the function reaches it.
WITH = """
[databases.mysql]
kind = "mysql"
wait_timeout_s = 1
[function]
timeout = 5
env = { FUNCTION_TIMEOUT_MS = "5000" }
upstreams = { DB = "mysql close=fin" }
"""


def _prerequisites() -> None:
    require(node_modules_problem(SEQUELIZE) is None, "the Sequelize samples' node_modules "
            "(make .venv/.installed)")
    try:
        MySQLUsers(mysql_dsn()).check()
    except Exception as exc:  # the prerequisite's own error says what is missing
        require(False, f"MariaDB at {mysql_dsn()}: {exc}")


def _convert(tmp_path: Path, text: str, name: str, folder: str, *extra: str) -> Path:
    recorded = tmp_path / f"{name}.log"
    recorded.write_text(text)
    (tmp_path / "with.toml").write_text(WITH)
    scenario = tmp_path / f"{name}.toml"
    assert main(["scenario", "from-logs", str(recorded), "--function", str(SEQUELIZE), "--handler",
                 f"{folder}/index.handler", "--runtime", "nodejs20.x", "--with", str(tmp_path / "with.toml"), "-o",
                 str(scenario), *extra]) == 0
    return scenario


def test_the_stale_pool_failure_recorded_in_logs_comes_back_and_the_fix_does_not_fail(tmp_path: Path) -> None:
    _prerequisites()
    source = tmp_path / "stale.toml"
    source.write_text(STALE.format(code=SEQUELIZE, folder="stale_pool"))
    # The failure is a race (scenarios/node/sequelize_stale_pool_fin.toml): record until a run shows it.
    for _ in range(5):
        results, text = _recorded(source)
        assert results[0].aborted is None, results[0].aborted
        if results[0].steps[2].outcome == "SequelizeDatabaseError":
            break
    else:
        pytest.fail("no recorded run of the stale pool failed in 5: the recording shows no bug to replay")
    scenario = _convert(tmp_path, text, "stale_logs", "stale_pool", "--runs", "3")
    written = scenario.read_text()
    assert 'production = { outcome = "SequelizeDatabaseError"' in written
    assert 'expect = { invoke = "r2", error_type = "SequelizeDatabaseError" }' in written
    loaded = sc.load(scenario)
    replayed = run_scenario(loaded)
    report = Report(loaded, replayed)
    # Quiet, nearly every run fails; a loaded 2-core host loses the race more often (as the shipped scenario says):
    # one reproduction of three shows the bug, which never shows unfrozen.
    assert report.reproduced >= 1, report.render()
    text_report = report.render()
    assert "production" in text_report and "SequelizeDatabaseError" in text_report

    fixed = tmp_path / "fixed.toml"
    fixed.write_text(STALE.format(code=SEQUELIZE, folder="recommended"))
    results, text = _recorded(fixed)
    assert results[0].aborted is None and [s.outcome for s in results[0].steps[:3:2]] == ["ok", "ok"]
    scenario = _convert(tmp_path, text, "fixed_logs", "recommended", "--runs", "2")
    loaded = sc.load(scenario)
    report = Report(loaded, run_scenario(loaded))
    assert report.reproduced == 2, report.render()  # every invocation ok, as in production


# Two invocations that both succeed only when they run at the same time (the basic function's "meet"), and a third
# that its environment serves after the first: what production logs of two environments at once look like.
CONCURRENT = """
runs = 1
[functions.basic]
code_dir = "{code}"
handler = "app.handler"
timeout = 25
env = {{ MEET_DIR = "${{run.dir}}" }}
[[steps]]
invoke = {{ as = "a", at = 0, payload = {{ action = "meet", name = "a", other = "b" }} }}
[[steps]]
invoke = {{ as = "b", at = 0, payload = {{ action = "meet", name = "b", other = "a" }} }}
[[steps]]
invoke = {{ as = "c", at = 0.5, after = "a", payload = {{ action = "echo" }} }}
[[steps]]
expect = {{ invoke = "a", ok = true }}
[[steps]]
expect = {{ invoke = "b", ok = true }}
[[steps]]
expect = {{ invoke = "c", ok = true }}
"""


def test_invocations_started_at_an_offset_run_at_the_same_time(tmp_path: Path) -> None:
    source = tmp_path / "concurrent.toml"
    source.write_text(CONCURRENT.format(code=BASIC))
    loaded = sc.load(source)
    [result] = run_scenario(loaded)
    assert result.aborted is None, result.aborted
    a, b, c = result.steps[:3]
    assert (a.outcome, b.outcome, c.outcome) == ("ok", "ok", "ok"), [s.detail for s in result.steps[:3]]
    assert result.reproduced
    spawned = {e.subject for e in result.events if e.kind == "spawn"}
    assert len(spawned) == 2  # one environment each: they overlapped, as the meeting shows
    assert a.at_s is not None and c.at_s is not None
    assert c.at_s >= a.at_s + a.duration_ms / 1000 - 0.001  # after = "a": not before a had returned


def test_overlapping_invocations_in_recorded_logs_replay_at_the_same_time(tmp_path: Path) -> None:
    source = tmp_path / "concurrent.toml"
    source.write_text(CONCURRENT.format(code=BASIC))
    results, text = _recorded(source)
    assert results[0].reproduced, results[0].failure
    recorded = tmp_path / "recorded.log"
    recorded.write_text(text)
    lines, _, _ = read_logs([recorded])
    assert len(rebuild(lines).environments) == 2
    # The payloads, in the order the invocations were asked for, and what the logs cannot tell: the meeting place.
    events = tmp_path / "events.jsonl"
    events.write_text('{"action": "meet", "name": "a", "other": "b"}\n{"action": "meet", "name": "b", "other": "a"}\n'
                      '{"action": "echo"}\n')
    (tmp_path / "with.toml").write_text('[function]\ntimeout = 25\nenv = { MEET_DIR = "${run.dir}" }\n')
    scenario = tmp_path / "replay.toml"
    assert main(["scenario", "from-logs", str(recorded), "--function", str(BASIC), "--handler", "app.handler",
                 "--events", str(events), "--with", str(tmp_path / "with.toml"), "--runs", "2",
                 "-o", str(scenario)]) == 0
    written = scenario.read_text()
    assert "at = 0.0" in written and 'after = "r' in written and "stay_frozen" not in written
    loaded = sc.load(scenario)
    replayed = run_scenario(loaded)
    report = Report(loaded, replayed)
    # Run in turn, the first meeting would wait for ever (Sandbox.Timedout): both back means both ran at once.
    assert report.reproduced == 2, report.render()
    text_report = report.render()
    for label in ("r1", "r2", "r3"):  # the table: production's outcome and start beside the local ones
        assert any(line.startswith("invoke#") and f"({label}, at " in line and "ok 2/2 at +" in line
                   for line in text_report.splitlines()), text_report
    timeline = text_report.split("timeline of run", 1)[1]  # and the timeline, each on its step's line
    assert all(f"({label}, at " in timeline for label in ("r1", "r2", "r3"))
    assert timeline.count("→ ok (production: ok)") == 3, timeline


def test_a_run_that_stops_early_does_not_start_an_invocation_whose_time_has_not_come(tmp_path: Path) -> None:
    source = tmp_path / "stops.toml"
    source.write_text(textwrap.dedent(f"""
        runs = 1
        [queues.q]
        [functions.basic]
        code_dir = "{BASIC}"
        handler = "app.handler"
        [[steps]]
        invoke = {{ as = "soon", at = 0 }}
        [[steps]]
        invoke = {{ as = "late", at = 600 }}
        [[steps]]
        send_message = {{ queue = "q", body = "nobody reads it" }}
        [[steps]]
        await_queue = {{ queue = "q", drained = true, timeout = 0.5 }}
        [[steps]]
        expect = {{ invoke = "late", ok = true }}
    """))
    [result] = run_scenario(sc.load(source))
    # await_queue stops the run (no consumer drains the queue); what had started ends, what had not never starts.
    assert result.aborted is not None and result.aborted.startswith("await_queue#1"), result.aborted
    assert [s.outcome for s in result.steps[:2]] == ["ok", "not started"]
    assert not result.reproduced

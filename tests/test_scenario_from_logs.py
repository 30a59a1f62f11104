"""``scenario from-logs`` on real and documented log shapes: each reader, the environments' timelines, the scenario
it writes (which the loader accepts), and the errors that name the file and line. No processes: files in, files out."""

from __future__ import annotations

import json
import tomllib
from pathlib import Path
from typing import Any

import pytest

from emulator import scenario as sc
from emulator.cli import main
from emulator.scenario.logs.lines import LogsError, parse_time
from emulator.scenario.logs.read import read_logs
from emulator.scenario.logs.rebuild import Rebuilt, rebuild

ROOT = Path(__file__).parent.parent
FIXTURES = Path(__file__).parent / "cloudwatch_logs"
HELLO = ROOT / "samples/python/hello"


def _rebuilt(name: str, function_name: str | None = None) -> tuple[Rebuilt, list[str], dict[str, str]]:
    lines, ignored, kinds = read_logs([FIXTURES / name])
    return rebuild(lines, function_name=function_name), ignored, kinds


def _convert(tmp_path: Path, name: str, *extra: str, capsys: pytest.CaptureFixture[str] | None = None
             ) -> tuple[int, dict[str, Any], str]:
    out = tmp_path / "scenario.toml"
    status = main(["scenario", "from-logs", str(FIXTURES / name), "--function", str(HELLO), "--handler",
                   "app.handler", "-o", str(out), *extra])
    err = capsys.readouterr().err if capsys is not None else ""
    return status, tomllib.loads(out.read_text()) if status == 0 else {}, err


def test_timestamps_of_every_format_are_read_as_utc() -> None:
    want = 1709640000.25
    for text in ("2024-03-05T12:00:00.250Z", "2024-03-05T12:00:00.250000+00:00", "2024-03-05 12:00:00.250",
                 "2024-03-05T13:00:00.25+0100"):
        assert parse_time(text) == pytest.approx(want), text
    assert parse_time("not a time") is None


def test_pasted_python_lines_give_a_timeout_and_the_function_timeout_it_names(tmp_path: Path) -> None:
    rebuilt, _, kinds = _rebuilt("plain_python_timeout.log")
    assert list(kinds.values()) == ["plain log lines"]
    [invocation] = rebuilt.invocations
    assert invocation.outcome == "Sandbox.Timedout"
    assert invocation.init_ms == 170.57 and invocation.duration_ms == 300099.78 and invocation.memory_mb == 128
    assert rebuilt.timeout_s == 300
    status, data, _ = _convert(tmp_path, "plain_python_timeout.log")
    assert status == 0
    assert data["functions"]["function"]["timeout"] == 300 and data["functions"]["function"]["memory"] == 128
    assert data["steps"][-1] == {"expect": {"invoke": "r1", "error_type": "Sandbox.Timedout"}}


def test_filter_log_events_json_gives_one_environment_per_stream_and_the_frozen_gap(tmp_path: Path,
                                                                                  capsys: pytest.CaptureFixture[str]
                                                                                  ) -> None:
    rebuilt, _, _ = _rebuilt("filter_log_events.json")
    assert [len(env.invocations) for env in rebuilt.environments] == [2, 1]
    first = rebuilt.environments[0]
    assert first.invocations[0].init_ms == 290.11 and first.invocations[1].init_ms is None  # cold, then warm
    assert first.invocations[1].outcome == "Error"  # the outer error of Node's "Invoke Error" line
    assert first.invocations[1].message == "Connection terminated unexpectedly"
    [gap] = first.gaps_s
    assert gap == pytest.approx(600.052 - 0.0512, abs=0.001)  # START to START, less the first one's duration
    status, data, err = _convert(tmp_path, "filter_log_events.json", "--max-gap", "2", capsys=capsys)
    assert status == 0
    assert set(data["functions"]) == {"function-1", "function-2"}  # each stream its own environment
    # function-2's cold start overlaps function-1's second invocation: every invocation at its offset (INIT
    # included: when it was asked for), the idle stretch between them capped at 2 s, none of them waited for.
    steps = [step["invoke"] for step in data["steps"] if "invoke" in step]
    assert not any("stay_frozen" in step for step in data["steps"])
    assert [(s["as"], s["function"], s.get("after")) for s in steps] == [
        ("r1", "function-1", None), ("r2", "function-2", None), ("r3", "function-1", "r1")]
    requested = [0.300 - 0.29011, 600.360 - 0.3015, 600.352]  # START less Init Duration
    r1_end = 0.300 + 0.0512
    assert steps[0]["at"] == 0.0
    assert steps[1]["at"] == pytest.approx(r1_end - requested[0] + 2.0, abs=0.002)  # the idle stretch: 2 s
    assert steps[2]["at"] == pytest.approx(steps[1]["at"] + requested[2] - requested[1], abs=0.002)
    assert steps[2]["production"]["outcome"] == "Error"
    assert steps[2]["production"]["at_s"] == pytest.approx(requested[2] - requested[0], abs=0.001)
    assert "was running on another environment" in err
    assert "--max-gap 2 shortened 1 gap(s): before r3 600.0 s → 2.3 s" in err
    loaded = sc.load(tmp_path / "scenario.toml")
    assert [step.at for step in loaded.steps if step.action == "invoke"] == [s["at"] for s in steps]


def test_the_json_log_format_through_aws_logs_tail_and_a_garbage_line_counted(tmp_path: Path,
                                                                             capsys: pytest.CaptureFixture[str]
                                                                             ) -> None:
    rebuilt, _, kinds = _rebuilt("tail_json_format.log")
    assert list(kinds.values()) == ["aws logs tail text"]
    assert [i.outcome for i in rebuilt.invocations] == ["ok", "ConnectionDoesNotExistError"]
    assert rebuilt.invocations[0].init_ms == 280.2 and rebuilt.memory_mb == 256
    assert rebuilt.ignored == [f"{FIXTURES / 'tail_json_format.log'}:8"]
    status, data, err = _convert(tmp_path, "tail_json_format.log", capsys=capsys)
    assert status == 0 and "ignored 1 line(s)" in err
    assert data["steps"][1] == {"stay_frozen": 30.0}


def test_insights_csv_of_two_functions_is_refused_by_name_then_one_is_picked(tmp_path: Path,
                                                                            capsys: pytest.CaptureFixture[str]
                                                                            ) -> None:
    status, _, err = _convert(tmp_path, "insights_two_functions.csv", capsys=capsys)
    assert status == 2
    assert "mix 2 functions: /aws/lambda/billing" in err and "/aws/lambda/reports" in err
    assert "--function-name" in err
    status, data, _ = _convert(tmp_path, "insights_two_functions.csv", "--function-name", "reports")
    assert status == 0
    assert "reports" in data["functions"] and data["functions"]["reports"]["timeout"] == 3
    assert data["steps"][-1]["expect"]["error_type"] == "Sandbox.Timedout"


def test_a_speed_that_shortens_a_gap_below_a_database_idle_timeout_says_so(tmp_path: Path,
                                                                          capsys: pytest.CaptureFixture[str]) -> None:
    extra = tmp_path / "with.toml"
    extra.write_text('[databases.pg]\nkind = "postgresql"\nidle_session_timeout_s = 20\n'
                     '[function]\nupstreams = { DB = "pg" }\n')
    status, data, err = _convert(tmp_path, "tail_json_format.log", "--speed", "10", "--with", str(extra),
                                 capsys=capsys)
    assert status == 0
    assert data["databases"]["pg"]["idle_session_timeout_s"] == 20
    assert data["functions"]["function"]["upstreams"] == {"DB": "pg"}
    assert "shorter than pg's idle_session_timeout_s = 20" in err


def test_events_are_the_payloads_by_request_id_or_in_order(tmp_path: Path) -> None:
    events = tmp_path / "events.jsonl"
    events.write_text(json.dumps({"requestId": "66666666-7777-4888-9999-000000000000", "event": {"n": 2}}) + "\n" +
                      json.dumps({"n": 1}) + "\n")
    status, data, _ = _convert(tmp_path, "tail_json_format.log", "--events", str(events))
    assert status == 0
    payloads = [s["invoke"]["payload"] for s in data["steps"] if "invoke" in s]
    assert payloads == [{"n": 1}, {"n": 2}]


@pytest.mark.parametrize(("name", "message"), [
    ("insights_cut_excerpt.json", "insights_cut_excerpt.json:4: END belongs to no invocation: request "
                                  "6f0cec52-7923-4676-9256-071a6481c1e9 has no START line"),
    ("tail_short_truncated.log", "tail_short_truncated.log:2: truncated REPORT line of "
                                 "31313131-4141-4515-9616-717171717171: no Billed Duration, Memory Size, "
                                 "Max Memory Used"),
    ("README.md", "README.md: unknown format: no START/REPORT line"),
])
def test_bad_input_is_named_with_its_file_and_line(tmp_path: Path, capsys: pytest.CaptureFixture[str], name: str,
                                                   message: str) -> None:
    status, _, err = _convert(tmp_path, name, capsys=capsys)
    assert status == 2
    assert message in err


def test_an_invocation_without_its_report_is_refused(tmp_path: Path) -> None:
    log = tmp_path / "cut.log"
    log.write_text("START RequestId: 0d2f5e4c-3a41-4c8e-9f0b-6b2d1e7a9c01 Version: $LATEST\nhello\n")
    lines, _, _ = read_logs([log])
    with pytest.raises(LogsError, match=r"cut.log:1: 0d2f5e4c-3a41-4c8e-9f0b-6b2d1e7a9c01 has no REPORT line"):
        rebuild(lines)


def test_a_production_outcome_is_checked_by_the_loader(tmp_path: Path) -> None:
    path = tmp_path / "bad.toml"
    path.write_text(f'[functions.f]\ncode_dir = "{HELLO}"\n[[steps]]\ninvoke = {{ production = {{ at_s = -1 }} }}\n'
                    '[[steps]]\nexpect = { ok = true }\n')
    with pytest.raises(sc.ScenarioError) as caught:
        sc.load(path)
    text = "\n".join(caught.value.problems)
    assert "production.outcome: required" in text and "production.at_s: must be >= 0" in text


def test_a_python_error_record_is_its_type_and_first_line() -> None:
    from emulator.scenario.logs.lines import LogLine
    from emulator.scenario.logs.records import classify

    record = classify(LogLine("x.log", 3, "[ERROR] Runtime.ImportModuleError: Unable to import module 'app': No module"
                                          " named 'pg8000'\rTraceback (most recent call last):"))
    assert (record.kind, record.error_type) == ("error", "Runtime.ImportModuleError")
    assert record.message == "Unable to import module 'app': No module named 'pg8000'"


def test_at_and_after_are_checked_by_the_loader(tmp_path: Path) -> None:
    path = tmp_path / "bad.toml"
    path.write_text(f'[functions.f]\ncode_dir = "{HELLO}"\n'
                    '[[steps]]\ninvoke = { as = "one", at = -1 }\n'
                    '[[steps]]\ninvoke = { as = "two", after = "one" }\n'
                    '[[steps]]\ninvoke = { as = "three", at = 1, after = "four" }\n'
                    '[[steps]]\ninvoke_async = { as = "five", at = 2 }\n'
                    '[[steps]]\nexpect = { ok = true }\n')
    with pytest.raises(sc.ScenarioError) as caught:
        sc.load(path)
    text = "\n".join(caught.value.problems)
    assert "bad.toml:4: step 1 (invoke).at: must be >= 0" in text
    assert "bad.toml:6: step 2 (invoke).after: only with at" in text
    assert "bad.toml:8: step 3 (invoke).after: no earlier invoke step is named 'four' (named: one, two)" in text
    assert "bad.toml:10: step 4 (invoke_async).at: only on invoke" in text


# ------------------------------------------------------------------------ excerpts users posted publicly
# Each copied as posted (tests/cloudwatch_logs/README.md names where): what each format looks like in the wild, and
# what the converter makes of it, or the message that says what is missing.
@pytest.mark.parametrize(("name", "timeout_s", "duration_ms"), [
    ("plain_python_timeout.log", 300, 300099.78),  # Python, with Init Duration
    ("plain_node_timeout_console.log", 3, 3071.27),  # the Lambda console's "Function logs", Node.js
    ("plain_spaced_timeout.log", 120, 120000.64),  # tabs turned into spaces, trailing blanks
])
def test_posted_pasted_lines_with_a_timeout_convert(tmp_path: Path, name: str, timeout_s: int,
                                                    duration_ms: float) -> None:
    rebuilt, ignored, kinds = _rebuilt(name)
    assert list(kinds.values()) == ["plain log lines"] and ignored == []
    [invocation] = rebuilt.invocations
    assert (invocation.outcome, invocation.duration_ms, invocation.memory_mb) == ("Sandbox.Timedout", duration_ms, 128)
    assert rebuilt.timeout_s == timeout_s
    status, data, _ = _convert(tmp_path, name)
    assert status == 0
    assert data["functions"]["function"]["timeout"] == timeout_s
    assert data["steps"][-1] == {"expect": {"invoke": "r1", "error_type": "Sandbox.Timedout"}}


@pytest.mark.parametrize(("name", "message"), [
    # aws logs tail of a published version's stream ([72]), Java lines continued on lines of their own, cut before
    # the REPORT
    ("tail_versioned_stream_cut.log", "tail_versioned_stream_cut.log:1: 0a449b7c-54a8-4d6f-a6fc-89facdbdf9fd has no "
                                      "REPORT line: the logs are cut"),
    # a REPORT line alone, posted to say what failed
    ("plain_report_only_status_error.log", "plain_report_only_status_error.log:1: REPORT belongs to no invocation: "
                                           "request 83269395-33ee-45a8-8a99-38f67b6faf72 has no START line"),
    # a Logs Insights JSON export that begins after the START
    ("insights_cut_excerpt.json", "insights_cut_excerpt.json:4: END belongs to no invocation"),
])
def test_posted_excerpts_that_are_cut_are_refused_by_file_and_line(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                                                  name: str, message: str) -> None:
    status, _, err = _convert(tmp_path, name, capsys=capsys)
    assert status == 2
    assert message in err


def test_what_the_posted_excerpts_hold_is_read_as_it_was_written() -> None:
    lines, _, kinds = read_logs([FIXTURES / "tail_versioned_stream_cut.log"])
    assert list(kinds.values()) == ["aws logs tail text"]
    assert {line.stream for line in lines} == {"2023/12/13/[72]0303138f718143848a4ff258c8e2d9c7"}
    assert [line.line for line in lines] == [1, 2, 4]  # a line without the time prefix continues the one before
    assert lines[1].message.endswith("\n - customId=")
    from emulator.scenario.logs.records import classify

    [report] = read_logs([FIXTURES / "plain_report_only_status_error.log"])[0]
    record = classify(report)
    assert (record.kind, record.status, record.error_type) == ("report", "error", "Runtime.InvalidEntrypoint")
    assert record.metrics["durationMs"] == 11.48 and record.metrics["memorySizeMB"] == 128


# ------------------------------------------------------------------------------ choosing, and bad input
def test_one_log_stream_is_picked_and_an_unknown_one_is_named(tmp_path: Path,
                                                              capsys: pytest.CaptureFixture[str]) -> None:
    stream = "2024/03/05/[$LATEST]4f1c0ad1a2b54b0e9a3b8b6a0e7c9d11"
    status, data, err = _convert(tmp_path, "filter_log_events.json", "--log-stream", stream, "--speed", "100",
                                 capsys=capsys)
    assert status == 0
    assert set(data["functions"]) == {"function"}  # one environment: one function, its invocations in turn
    assert [s.get("stay_frozen") for s in data["steps"][:3]] == [None, pytest.approx(6.0, abs=0.01), None]
    assert "--speed 100 shortened 1 gap(s): before r2 600.0 s → 6.0 s" in err
    status, _, err = _convert(tmp_path, "filter_log_events.json", "--log-stream", "2024/03/05/[$LATEST]nope",
                              capsys=capsys)
    assert status == 2
    assert "--log-stream 2024/03/05/[$LATEST]nope: not in the logs; streams: " + stream in err


def test_streams_of_different_memory_sizes_are_two_functions_and_refused(tmp_path: Path,
                                                                         capsys: pytest.CaptureFixture[str]) -> None:
    log = tmp_path / "mixed.log"
    log.write_text(
        "2024-06-01T10:00:00.000000+00:00 2024/06/01/[$LATEST]aaaa START RequestId: 11111111-2222-4333-8444-"
        "555555555555 Version: $LATEST\n"
        "2024-06-01T10:00:00.010000+00:00 2024/06/01/[$LATEST]aaaa REPORT RequestId: 11111111-2222-4333-8444-"
        "555555555555\tDuration: 10.00 ms\tBilled Duration: 10 ms\tMemory Size: 128 MB\tMax Memory Used: 50 MB\n"
        "2024-06-01T10:00:01.000000+00:00 2024/06/01/[$LATEST]bbbb START RequestId: 66666666-7777-4888-9999-"
        "000000000000 Version: $LATEST\n"
        "2024-06-01T10:00:01.010000+00:00 2024/06/01/[$LATEST]bbbb REPORT RequestId: 66666666-7777-4888-9999-"
        "000000000000\tDuration: 10.00 ms\tBilled Duration: 10 ms\tMemory Size: 512 MB\tMax Memory Used: 50 MB\n")
    status = main(["scenario", "from-logs", str(log), "--function", str(HELLO), "--handler", "app.handler",
                   "-o", str(tmp_path / "out.toml")])
    err = capsys.readouterr().err
    assert status == 2
    assert "mix functions (or configurations): 128 MB in stream 2024/06/01/[$LATEST]aaaa; 512 MB in stream " \
           "2024/06/01/[$LATEST]bbbb" in err and "--log-stream" in err


def test_json_of_another_shape_and_bad_events_lines_are_named_with_their_file_and_line(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    other = tmp_path / "other.json"
    other.write_text('[{"time": 1, "text": "START RequestId: 11111111-2222-4333-8444-555555555555"}]\n')
    status = main(["scenario", "from-logs", str(other), "--function", str(HELLO), "--handler", "app.handler",
                   "-o", str(tmp_path / "out.toml")])
    assert status == 2
    assert f"{other}:1: unknown format: JSON that is neither" in capsys.readouterr().err
    events = tmp_path / "events.jsonl"
    events.write_text('{"n": 1}\n{"n": \n')
    status, _, err = _convert(tmp_path, "tail_json_format.log", "--events", str(events), capsys=capsys)
    assert status == 2
    assert f"{events}:2: not JSON" in err


def test_environments_that_never_overlapped_replay_in_turn(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Two streams, the second's cold start (INIT included) after the first's invocation ended: no at, a gap."""
    log = tmp_path / "two.log"
    report = "\tDuration: 10.00 ms\tBilled Duration: 10 ms\tMemory Size: 128 MB\tMax Memory Used: 50 MB"
    log.write_text(
        "2024-06-01T10:00:00.000000+00:00 2024/06/01/[$LATEST]aaaa START RequestId: 11111111-2222-4333-8444-"
        "555555555555 Version: $LATEST\n"
        f"2024-06-01T10:00:00.010000+00:00 2024/06/01/[$LATEST]aaaa REPORT RequestId: 11111111-2222-4333-8444-"
        f"555555555555{report}\n"
        "2024-06-01T10:00:01.000000+00:00 2024/06/01/[$LATEST]bbbb START RequestId: 66666666-7777-4888-9999-"
        "000000000000 Version: $LATEST\n"
        f"2024-06-01T10:00:01.010000+00:00 2024/06/01/[$LATEST]bbbb REPORT RequestId: 66666666-7777-4888-9999-"
        f"000000000000{report}\tInit Duration: 500.00 ms\n")
    out = tmp_path / "out.toml"
    assert main(["scenario", "from-logs", str(log), "--function", str(HELLO), "--handler", "app.handler",
                 "-o", str(out)]) == 0
    assert "running on another environment" not in capsys.readouterr().err
    steps = tomllib.loads(out.read_text())["steps"]
    assert steps[1] == {"stay_frozen": 0.49}  # the second START 0.99 s after the first ended, its INIT 0.5 s before
    assert [(s["invoke"]["function"], "at" in s["invoke"]) for s in steps if "invoke" in s] == [
        ("function-1", False), ("function-2", False)]
    assert steps[2]["invoke"]["production"]["at_s"] == 0.5  # asked for 0.5 s in: its START less its INIT


def test_a_yaml_scenario_of_several_environments_spells_each_function_out(tmp_path: Path) -> None:
    out = tmp_path / "scenario.yaml"
    assert main(["scenario", "from-logs", str(FIXTURES / "filter_log_events.json"), "--function", str(HELLO),
                 "--handler", "app.handler", "--env", "TABLE=orders", "-o", str(out)]) == 0
    text = out.read_text()
    assert "&id" not in text and "*id" not in text  # no YAML anchors: each function's env written out
    loaded = sc.load(out)
    assert [dict(f.env) for f in loaded.functions.values()] == [{"TABLE": "orders"}] * 2
    assert next(s.at for s in loaded.steps if s.action == "invoke") == 0.0

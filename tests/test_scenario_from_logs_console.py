"""``scenario from-logs`` on tables copied from the CloudWatch console: Logs Insights results pasted as Markdown
(under their query, newest or oldest first, with @logStream or @log columns, row numbers instead of times), a log
stream's "Log events" pasted with tabs, ``&nbsp;`` and non-breaking spaces. Files in, files out: no processes."""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Any

import pytest

from emulator.cli import main
from emulator.scenario.logs.lines import parse_time
from emulator.scenario.logs.read import read_logs
from emulator.scenario.logs.rebuild import Rebuilt, rebuild

FIXTURES = Path(__file__).parent / "cloudwatch_logs"
HELLO = Path(__file__).parent.parent / "samples/python/hello"
CONSOLE = "a table copied from the CloudWatch console"


def _rebuilt(name: str) -> tuple[Rebuilt, list[str], dict[str, str]]:
    lines, ignored, kinds = read_logs([FIXTURES / name])
    return rebuild(lines), ignored, kinds


def _convert(tmp_path: Path, name: str, capsys: pytest.CaptureFixture[str]) -> tuple[int, dict[str, Any], str]:
    out = tmp_path / "scenario.toml"
    status = main(["scenario", "from-logs", str(FIXTURES / name), "--function", str(HELLO), "--handler",
                   "app.handler", "-o", str(out)])
    err = capsys.readouterr().err
    return status, tomllib.loads(out.read_text()) if status == 0 else {}, err


def _line_of(name: str, text: str) -> int:
    """The 1-based line of the file that holds text (where an error must point)."""
    return next(n for n, line in enumerate((FIXTURES / name).read_text().splitlines(), 1) if text in line)


# --------------------------------------------------------------- written in the shape of each console copy
def test_an_insights_table_with_log_streams_gives_one_environment_per_stream(tmp_path: Path,
                                                                            capsys: pytest.CaptureFixture[str]
                                                                            ) -> None:
    name = "console_insights_two_streams.md"
    rebuilt, ignored, kinds = _rebuilt(name)
    assert list(kinds.values()) == [CONSOLE] and ignored == [] and rebuilt.ignored == []
    assert [len(env.invocations) for env in rebuilt.environments] == [2, 1]
    first, second = rebuilt.environments
    assert first.stream == "2024/06/01/[$LATEST]5e0b1d7c9a2f4c3e8d6b4a1f0e9c8b7a"
    assert [(i.init_ms, i.outcome) for i in first.invocations] == [(412.7, "ok"), (None, "OperationalError")]
    assert first.invocations[1].message == "server closed the connection unexpectedly Traceback (most recent call " \
                                           "last): File \"/var/task/app.py\", line 18, in handler"
    assert first.invocations[0].start_s == parse_time("2024-06-01T10:00:00.300Z")
    [gap] = first.gaps_s
    assert gap == pytest.approx(120.1 - 0.0512, abs=0.001)  # START to START, less the first one's duration
    assert second.invocations[0].init_ms == 380.0 and rebuilt.memory_mb == 512
    # the query above the table (its "| sort" line too) is not a row; a message that holds "|" is one cell again
    lines, _, _ = read_logs([FIXTURES / name])
    assert lines[0].line == _line_of(name, "START RequestId: a1b2c3d4-1111")
    assert lines[1].message.endswith("GET /orders/42 | status 200")
    status, data, err = _convert(tmp_path, name, capsys)
    assert status == 0, err
    assert f"{FIXTURES / name}: {CONSOLE}" in err
    assert set(data["functions"]) == {"function-1", "function-2"}
    assert {f["memory"] for f in data["functions"].values()} == {512}
    steps = [s["invoke"] for s in data["steps"] if "invoke" in s]
    # in the order they were asked for: function-2's cold start (its START less its INIT) before function-1's
    # second invocation, which overlapped it
    assert [(s["function"], s["production"]["outcome"]) for s in steps] == [
        ("function-1", "ok"), ("function-2", "ok"), ("function-1", "OperationalError")]
    assert "was running on another environment" in err
    assert {"expect": {"invoke": steps[2]["as"], "error_type": "OperationalError"}} in data["steps"]


def test_log_events_pasted_with_tabs_convert_with_their_times_zone_and_error(tmp_path: Path,
                                                                            capsys: pytest.CaptureFixture[str]
                                                                            ) -> None:
    name = "console_log_events_tabs.txt"
    rebuilt, ignored, kinds = _rebuilt(name)
    assert list(kinds.values()) == [CONSOLE]
    assert ignored == [] and rebuilt.ignored == []  # the console's "No older events" lines are not events
    [env] = rebuilt.environments
    cold, warm = env.invocations
    assert cold.start_s == parse_time("2024-06-01T10:00:00.412Z")  # the console's +02:00, read as such
    assert (cold.init_ms, cold.duration_ms, cold.memory_mb, cold.outcome) == (398.2, 50.12, 256, "ok")
    assert (warm.outcome, warm.message) == ("Error", "Connection terminated unexpectedly")  # Node's Invoke Error
    [gap] = env.gaps_s
    assert gap == pytest.approx(299.688 - 0.05012, abs=0.001)
    status, data, err = _convert(tmp_path, name, capsys)
    assert status == 0, err
    assert data["functions"]["function"]["memory"] == 256
    assert data["steps"][1] == {"stay_frozen": pytest.approx(299.638, abs=0.001)}
    assert data["steps"][-1] == {"expect": {"invoke": "r2", "error_type": "Error"}}


def test_a_table_with_nbsp_newest_first_is_read_oldest_first(tmp_path: Path,
                                                            capsys: pytest.CaptureFixture[str]) -> None:
    name = "console_nbsp_newest_first.md"
    rebuilt, _, kinds = _rebuilt(name)
    assert list(kinds.values()) == [CONSOLE]
    first, second = rebuilt.invocations
    assert first.request_id.endswith("1f01") and second.request_id.endswith("1f02")
    assert (first.init_ms, first.duration_ms) == (301.1, 85.5)  # the REPORT's fields apart by non-breaking spaces
    assert (second.outcome, second.duration_ms) == ("Sandbox.Timedout", 3003.41)
    assert rebuilt.timeout_s == 3
    # reversed, END comes after its START again and before its REPORT (one millisecond's rows in their order)
    lines, _, _ = read_logs([FIXTURES / name])
    assert [line.message.split(" ", 1)[0] for line in lines[:3]] == ["START", "END", "REPORT"]
    status, data, err = _convert(tmp_path, name, capsys)
    assert status == 0, err
    assert data["functions"]["function"]["timeout"] == 3
    assert data["steps"][-1] == {"expect": {"invoke": "r2", "error_type": "Sandbox.Timedout"}}


# ------------------------------------------------------------------------ excerpts users posted publicly
# Copied as posted (tests/cloudwatch_logs/README.md names where); each stops before a REPORT, or begins after a
# START, so each is refused with the file and line of what is missing.
@pytest.mark.parametrize(("name", "where", "message"), [
    # Logs Insights pasted as Markdown under its query, oldest first
    ("console_insights_query_cut.md", "START RequestId: d7079872",
     "d7079872-1566-4899-b242-64d26336b082 has no REPORT line: the logs are cut"),
    # with an @log column
    ("console_insights_log_column_cut.md", "START RequestId: 56cfc7c8",
     "56cfc7c8-94e4-4242-aa34-d5bc53eacbef has no REPORT line: the logs are cut"),
    # INIT_START and HTML entities in the rows
    ("console_insights_init_entities_cut.md", "START RequestId: 4ac8de91",
     "4ac8de91-0498-4346-ae97-5c2831d2795a has no REPORT line: the logs are cut"),
    # the older copy: padded cells, newest first (the REPORT on top, its START below the excerpt)
    ("console_insights_newest_first_cut.md", "REPORT RequestId: b3cd4ea3",
     "REPORT belongs to no invocation: request b3cd4ea3-9d24-4448-807a-dfcf32f3248b has no START line"),
    # row numbers instead of times, three invocations of three environments without their streams
    ("console_row_numbers_concurrent_cut.md", "START RequestId: 9f8ef097",
     "START of 9f8ef097-61db-45a2-97cd-922f825bc166 while 233c5da7-628b-42d4-9b3a-21f9d471d7d0 (started at "),
])
def test_posted_console_copies_that_are_cut_are_refused_by_file_and_line(
        tmp_path: Path, capsys: pytest.CaptureFixture[str], name: str, where: str, message: str) -> None:
    status, _, err = _convert(tmp_path, name, capsys)
    assert status == 2
    assert f"{FIXTURES / name}:{_line_of(name, where)}: {message}" in err


def test_what_the_posted_console_copies_hold_is_read_as_it_was_written(tmp_path: Path,
                                                                       capsys: pytest.CaptureFixture[str]) -> None:
    lines, _, kinds = read_logs([FIXTURES / "console_insights_log_column_cut.md"])
    assert list(kinds.values()) == [CONSOLE]
    assert {line.group for line in lines} == {"/aws/lambda/azul-service-prod-manifest"}  # @log: account:group
    assert lines[1].message.endswith(".curlrc")  # the @log cell is not part of the message
    assert lines[0].time_s == parse_time("2025-04-09T09:24:07.387Z")
    lines, _, _ = read_logs([FIXTURES / "console_insights_init_entities_cut.md"])
    assert lines[0].message.startswith("INIT_START Runtime Version: python:3.13.v76")
    assert "for 'sts' with ID" in lines[3].message  # &#x27; as the function logged it
    lines, _, _ = read_logs([FIXTURES / "console_row_numbers_concurrent_cut.md"])
    assert [(line.time_s, line.message[:5]) for line in lines] == [(None, "START")] * 3  # row numbers: no time
    status, _, err = _convert(tmp_path, "console_row_numbers_concurrent_cut.md", capsys)
    assert status == 2 and "without their log streams" in err and "@logStream" in err


def test_the_other_formats_are_not_taken_for_a_console_copy() -> None:
    expected = {"plain_python_timeout.log": "plain log lines", "plain_spaced_timeout.log": "plain log lines",
                "tail_versioned_stream_cut.log": "aws logs tail text",
                "insights_two_functions.csv": "Logs Insights CSV or JSON"}
    for name, kind in expected.items():
        _, _, kinds = read_logs([FIXTURES / name])
        assert kinds == {str(FIXTURES / name): kind}, name


def test_a_markdown_table_a_function_logged_leaves_tail_output_tail_output(tmp_path: Path) -> None:
    stream = "2024/06/01/[$LATEST]5e0b1d7c9a2f4c3e8d6b4a1f0e9c8b7a"
    request = "a1b2c3d4-1111-4aaa-8bbb-000000000001"
    log = tmp_path / "tail.log"
    log.write_text(
        f"2024-06-01T10:00:00.300000+00:00 {stream} START RequestId: {request} Version: $LATEST\n"
        f"2024-06-01T10:00:00.310000+00:00 {stream} {request}\tINFO\torders:\n"
        "| id | total |\n| --- | --- |\n| 42 | 9.50 |\n"
        f"2024-06-01T10:00:00.350000+00:00 {stream} END RequestId: {request}\n"
        f"2024-06-01T10:00:00.350000+00:00 {stream} REPORT RequestId: {request}\tDuration: 50.00 ms\tBilled "
        "Duration: 50 ms\tMemory Size: 128 MB\tMax Memory Used: 60 MB\n")
    lines, _, kinds = read_logs([log])
    assert kinds == {str(log): "aws logs tail text"}
    assert lines[1].message.endswith("orders:\n| id | total |\n| --- | --- |\n| 42 | 9.50 |")
    [invocation] = rebuild(lines).invocations
    assert invocation.outcome == "ok" and invocation.stream == stream



def test_a_stream_column_of_any_name_and_an_escaped_pipe_are_read_from_their_cells(tmp_path: Path) -> None:
    request = "a1b2c3d4-1111-4aaa-8bbb-000000000001"
    log = tmp_path / "table.md"
    log.write_text(
        "| @logStream | @timestamp | @message |\n|---|---|---|\n"
        f"| edge-replica-1 | 2024-06-01 10:00:00.300 | START RequestId: {request} Version: $LATEST |\n"
        f"| edge-replica-1 | 2024-06-01 10:00:00.310 | a \\| b |\n"
        f"| edge-replica-1 | 2024-06-01 10:00:00.350 | REPORT RequestId: {request} Duration: 50.00 ms Billed "
        "Duration: 50 ms Memory Size: 128 MB Max Memory Used: 60 MB |\n")
    lines, _, _ = read_logs([log])
    assert [(line.stream, line.line) for line in lines] == [("edge-replica-1", 3), ("edge-replica-1", 4),
                                                            ("edge-replica-1", 5)]
    assert lines[1].message == "a | b"
    [invocation] = rebuild(lines).invocations
    assert (invocation.stream, invocation.duration_ms) == ("edge-replica-1", 50.0)

"""Reading log files: which format each one is (CloudWatch JSON, Logs Insights CSV or JSON, a table copied from
the CloudWatch console, ``aws logs tail`` text, plain lines), and its events in order."""

from __future__ import annotations

import json
from pathlib import Path

from . import cloudwatch_json, console, insights, text
from .lines import LogLine, LogsError
from .records import classify

FORMATS = ("filter-log-events/get-log-events JSON", "Logs Insights CSV or JSON", "aws logs tail text",
           "plain log lines", "a table copied from the CloudWatch console")


def read_file(path: Path) -> tuple[list[LogLine], list[str], str]:
    """The events of one file, the places of what could not be read, and the format's name."""
    name = str(path)
    try:
        content = path.read_text(encoding="utf-8", errors="replace")
    except OSError as exc:
        raise LogsError(f"{name}: cannot read it: {exc.strerror}") from None
    stripped = content.lstrip("\ufeff \t\r\n")
    if stripped.startswith(("{", "[")):
        try:
            data = json.loads(stripped)
        except ValueError:
            data = None  # JSON lines (the JSON log format pasted): read as text
        if cloudwatch_json.looks_like(data):
            assert isinstance(data, dict)
            return (*cloudwatch_json.read(name, content, data), FORMATS[0])
        if insights.looks_like_json(data):
            assert isinstance(data, list)
            return (*insights.read_json(name, content, data), FORMATS[1])
        if data is not None and not isinstance(data, dict):
            raise LogsError(f"{name}:1: unknown format: JSON that is neither {FORMATS[0]} ({{\"events\": [...]}}) nor "
                            f"a Logs Insights export (rows with @timestamp, @logStream, @message)")
    if console.looks_like(content):  # before the CSV: a Markdown table's header names @timestamp and @message too
        return (*console.read(name, content), FORMATS[4])
    if insights.looks_like_csv(content):
        return (*insights.read_csv(name, content), FORMATS[1])
    lines, ignored = text.read(name, content)
    kind = FORMATS[2] if text.looks_like_tail(content.split("\n")) else FORMATS[3]
    return lines, ignored, kind


def read_logs(paths: list[Path]) -> tuple[list[LogLine], list[str], dict[str, str]]:
    """Every file's events; a file in which nothing is a Lambda record is an unknown format."""
    everything: list[LogLine] = []
    ignored: list[str] = []
    kinds: dict[str, str] = {}
    for path in paths:
        lines, skipped, kind = read_file(path)
        if not any(classify(line).kind in ("start", "report") for line in lines):
            raise LogsError(f"{path}: unknown format: no START/REPORT line nor platform.start/platform.report record "
                            f"found; expected one of: {', '.join(FORMATS)}")
        everything.extend(lines)
        ignored.extend(skipped)
        kinds[str(path)] = kind
    return everything, ignored, kinds

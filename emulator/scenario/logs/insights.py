"""Reader of CloudWatch Logs Insights exports: CSV or JSON rows with ``@timestamp``, ``@logStream``, ``@message``."""

from __future__ import annotations

import csv
import io
import re
from typing import Any

from .lines import LogLine, parse_time

_KEY = re.compile(r'"@message"\s*:')


def _group(value: Any) -> str | None:
    """``@log`` is ``account:/aws/lambda/NAME``: the log group after the account."""
    if not isinstance(value, str) or not value:
        return None
    return value.split(":", 1)[1] if ":" in value else value


def looks_like_json(data: Any) -> bool:
    return isinstance(data, list) and bool(data) and all(isinstance(row, dict) and "@message" in row for row in data)


def looks_like_csv(text: str) -> bool:
    head = text.lstrip("\ufeff").split("\n", 1)[0]
    return "@message" in head and "@timestamp" in head


def _line(name: str, number: int, row: dict[str, Any]) -> LogLine:
    stamp = row.get("@timestamp")
    stream = row.get("@logStream")
    return LogLine(name, number, str(row.get("@message", "")).rstrip("\n"),
                   parse_time(stamp) if isinstance(stamp, str) else None,
                   stream if isinstance(stream, str) and stream else None, _group(row.get("@log")))


def read_json(name: str, text: str, data: list[dict[str, Any]]) -> tuple[list[LogLine], list[str]]:
    starts = [text.count("\n", 0, m.start()) + 1 for m in _KEY.finditer(text)]
    rows = sorted(enumerate(data), key=lambda item: parse_time(str(item[1].get("@timestamp", ""))) or 0.0)
    # Insights sorts newest first by default: events go oldest first, the line numbers stay each row's own.
    return [_line(name, starts[i] if i < len(starts) else 1, row) for i, row in rows], []


def read_csv(name: str, text: str) -> tuple[list[LogLine], list[str]]:
    reader = csv.DictReader(io.StringIO(text.lstrip("\ufeff")))
    out: list[tuple[float, LogLine]] = []
    ignored: list[str] = []
    for row in reader:
        number = reader.line_num  # the line the row ends on; a message with newlines spans several
        if not row.get("@message"):
            ignored.append(f"{name}:{number}")
            continue
        line = _line(name, number, row)
        out.append((line.time_s or 0.0, line))
    out.sort(key=lambda item: item[0])
    return [line for _, line in out], ignored

"""Reader of ``aws logs filter-log-events`` / ``get-log-events`` output: ``{"events": [{timestamp, message, ...}]}``."""

from __future__ import annotations

import re
from typing import Any

from .lines import LogLine, epoch_ms

# Where each event's "message" key sits in the text, for line numbers (a message holding JSON has its quotes
# escaped, so only the events' own keys match).
_KEY = re.compile(r'"message"\s*:')


def looks_like(data: Any) -> bool:
    return isinstance(data, dict) and isinstance(data.get("events"), list)


def read(name: str, text: str, data: dict[str, Any]) -> tuple[list[LogLine], list[str]]:
    """The events in file order; get-log-events names no stream (one file is one stream: the file's name)."""
    starts = [text.count("\n", 0, m.start()) + 1 for m in _KEY.finditer(text)]
    lines: list[LogLine] = []
    ignored: list[str] = []
    group = data.get("logGroupName") if isinstance(data.get("logGroupName"), str) else None
    found = 0
    for event in data["events"]:
        if not isinstance(event, dict) or not isinstance(event.get("message"), str):
            ignored.append(f"{name}: an event without a message")
            continue
        line = starts[found] if found < len(starts) else 1
        found += 1
        stream = event.get("logStreamName")
        lines.append(LogLine(name, line, event["message"].rstrip("\n"), epoch_ms(event.get("timestamp")),
                             stream if isinstance(stream, str) else None,
                             event.get("logGroupName") if isinstance(event.get("logGroupName"), str) else group))
    return lines, ignored

"""Reader of text logs: ``aws logs tail`` (detailed: time, stream, message; ``--format short``: time, message) and
plain pasted lines (one environment; times from the lines when they carry them)."""

from __future__ import annotations

import re

from .lines import TIMESTAMP, LogLine, parse_time

# A Lambda log stream: 2024/01/02/[$LATEST]0123abcd (or a version number in the brackets).
STREAM = r"\d{4}/\d\d/\d\d/\[[^\]\s]*\][0-9A-Za-z]+"
_TAIL = re.compile(rf"^(?P<time>{TIMESTAMP})\s+(?:(?P<stream>{STREAM})\s+)?(?P<message>.*)$")
_RECORD_START = re.compile(r"^(START|END|REPORT|INIT_START|INIT_REPORT|EXTENSION|TELEMETRY|\[[A-Z]+\]|\{)")


def looks_like_tail(lines: list[str]) -> bool:
    """Most non-empty lines begin with a time: the CLI's tail (a message's further lines do not)."""
    filled = [line for line in lines if line.strip()]
    prefixed = sum(1 for line in filled if _TAIL.match(line))
    return bool(filled) and prefixed * 2 >= len(filled)


def read(name: str, text: str) -> tuple[list[LogLine], list[str]]:
    """Tail output when most lines carry a time, else plain lines. In tail output a line without the time prefix
    continues the event before it (a stack trace), unless it is a Lambda record of its own."""
    raw = text.split("\n")
    tail = looks_like_tail(raw)
    lines: list[LogLine] = []
    for number, line in enumerate(raw, 1):
        line = line.rstrip("\r")
        if not line.strip():
            continue
        match = _TAIL.match(line)
        if tail and match is not None:
            message = match["message"]
            lines.append(LogLine(name, number, message, parse_time(match["time"]), match["stream"]))
        elif tail and lines and not _RECORD_START.match(line) and not lines[-1].message.lstrip().startswith("{"):
            last = lines[-1]
            lines[-1] = LogLine(last.file, last.line, f"{last.message}\n{line}", last.time_s, last.stream, last.group)
        else:
            # A pasted line: a runtime's own line may begin with a time (Node: "2024-...Z\t<request id>\tINFO\t...").
            lead = re.match(rf"^({TIMESTAMP})\s", line)
            lines.append(LogLine(name, number, line, parse_time(lead[1]) if lead else None))
    return lines, []

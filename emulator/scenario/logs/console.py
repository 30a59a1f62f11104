"""Reader of logs copied from the CloudWatch console: a Logs Insights result table (``| @timestamp | @message |``
rows, newest or oldest first, with its query header above), a log stream's "Log events" table pasted with tabs,
and either one with ``&nbsp;`` or non-breaking spaces. Each row becomes a line of ``aws logs tail`` text (time,
message) that the text reader parses, so one parser reads both; the stream and log group come from their columns.
"""

from __future__ import annotations

import html
import re
from dataclasses import replace

from . import text
from .insights import _group
from .lines import LogLine, parse_time

_SEPARATOR = re.compile(r"^\s*\|?(?:\s*:?-{3,}:?\s*\|)+\s*:?-*:?\s*$")  # | --- | --- | and |-----|---|
# What the console puts around the rows it copies; not log events.
_CHROME = re.compile(r"^\s*(?:No (?:older|newer) events (?:at this moment|found)|Load more|Timestamp\s+Message\s*$)")
_RECORD = re.compile(r'^(?:START|END|REPORT) RequestId|^INIT_START |^\{\s*"time"')  # a Lambda record's message
_NAMES = {"timestamp": "time", "@timestamp": "time", "time": "time", "message": "message", "@message": "message",
          "logstream": "stream", "@logstream": "stream", "log stream": "stream", "@log": "group", "log": "group"}
_ROW_NUMBER = re.compile(r"^\d+$")


def _clean(line: str) -> str:
    """``&nbsp;`` and the other entities a page's copy keeps, non-breaking spaces, and the line end."""
    return html.unescape(line.rstrip("\r")).replace("\u00a0", " ").replace("\u202f", " ")


def _cells(line: str) -> list[str] | None:
    """A table row's cells (a leading ``|``: Markdown; a leading tab or space and tabs: the console's "Log events"
    copy), else None. Empty cells at either end (the console's expand column, ``&nbsp;``) are dropped; a message
    that holds ``|`` or tabs is joined back by the caller."""
    if line.lstrip().startswith("|"):
        body = line.strip()[1:]
        if body.endswith("|") and not body.endswith("\\|"):
            body = body[:-1]
        cells = re.split(r"(?<!\\)\|", body)
    elif "\t" in line and line[:1] in ("\t", " "):
        cells = line.split("\t")
    else:
        return None
    while cells and not cells[0].strip():
        cells.pop(0)
    while cells and not cells[-1].strip():
        cells.pop()
    return cells


def _header(cells: list[str]) -> dict[str, int]:
    """The columns a header row names (``@timestamp``, ``@message``, ``@logStream``, ``@log``; the console's
    ``Timestamp``, ``Message``)."""
    columns: dict[str, int] = {}
    for index, cell in enumerate(cells):
        name = _NAMES.get(cell.strip().lower())
        if name is not None:
            columns.setdefault(name, index)
    return columns


def _row(cells: list[str], columns: dict[str, int], joiner: str) -> tuple[str | None, str | None, str | None, str]:
    """time, stream, group and message of a row. A message that holds the separator was split into several cells:
    they are joined back, and the columns after the message counted from the row's end."""
    message_col = columns.get("message")
    if message_col is None:  # no header: a time (or a result table's row number) first, then the message
        first = cells[0].strip() if cells else ""
        stamp = first if parse_time(first) is not None else None
        start = 1 if stamp is not None or _ROW_NUMBER.match(first) else 0
        return stamp, None, None, _message(cells[start:], joiner)
    extra = max(0, len(cells) - (max(columns.values()) + 1))

    def at(name: str) -> str | None:
        index = columns.get(name)
        if index is None:
            return None
        index = index if index < message_col else index + extra
        return (cells[index].strip() or None) if index < len(cells) else None

    return at("time"), at("stream"), at("group"), _message(cells[message_col:message_col + extra + 1], joiner)


def _message(cells: list[str], joiner: str) -> str:
    """The message's cells joined back; Markdown's escaped ``\\|`` is the message's own ``|``."""
    text = joiner.join(cells).strip()
    return text.replace("\\|", "|") if joiner == "|" else text


def _joiner(line: str) -> str:
    return "|" if line.lstrip().startswith("|") else "\t"


def _is_record(cells: list[str], line: str) -> bool:
    stamp, _, _, message = _row(cells, {}, _joiner(line))
    return bool(_RECORD.match(message)) and (stamp is not None or line.lstrip().startswith("|"))


def _table_start(lines: list[str]) -> tuple[dict[str, int], int] | None:
    """The header's columns and the index of the table's first row: under a header over a ``---`` separator, under
    a header that names a time and a message column, or (a copy without its header) at the first row that holds a
    Lambda record. None: no table."""
    for index, line in enumerate(lines):
        if _SEPARATOR.match(line) and index > 0 and (head := _cells(lines[index - 1])) is not None:
            return _header(head), index + 1
        cells = _cells(line)
        if cells is None:
            continue
        if {"time", "message"} <= set(_header(cells)):
            return _header(cells), index + 1
        if _is_record(cells, line):
            return {}, index
    return None


def looks_like(content: str) -> bool:
    """A table the console copied (see ``_table_start``) whose rows are most of the lines from its start on (a
    function that printed a Markdown table into ``aws logs tail`` output is still tail output)."""
    lines = [_clean(line) for line in content.split("\n")]
    start = _table_start(lines)
    if start is None:
        return False
    filled = [line for line in lines[start[1]:] if line.strip() and not _CHROME.match(line)]
    rows = sum(1 for line in filled if _cells(line) is not None)
    return rows * 2 >= len(filled)


def read(name: str, content: str) -> tuple[list[LogLine], list[str]]:
    """The rows as log events, oldest first (Insights copies newest first when its query sorts so). What is above
    the table (the query Insights prints over it) and the console's own lines ("No older events ...") are left out;
    other lines between rows go to the text reader as they are (a stack trace continues the event before it)."""
    lines = [_clean(line) for line in content.split("\n")]
    columns, first = _table_start(lines) or ({}, len(lines))
    streams: dict[int, str] = {}
    groups: dict[int, str] = {}
    as_text = [""] * len(lines)
    for index in range(first, len(lines)):
        line = lines[index]
        if _CHROME.match(line) or _SEPARATOR.match(line):
            continue
        cells = _cells(line)
        if cells is None:
            as_text[index] = line
            continue
        stamp, stream, group, message = _row(cells, columns, _joiner(line))
        if stream:
            streams[index + 1] = stream
        if group:
            groups[index + 1] = group
        # a line of aws logs tail --format short (time, message); the stream and group are set on the event after
        as_text[index] = message if stamp is None or parse_time(stamp) is None else f"{stamp} {message}"
    events, ignored = text.read(name, "\n".join(as_text))
    events = [replace(e, stream=streams.get(e.line, e.stream), group=_group(groups.get(e.line)) or e.group)
              for e in events]
    times = [e.time_s for e in events]
    if len(events) > 1 and None not in times and (times[0] or 0.0) > (times[-1] or 0.0):
        events.reverse()  # newest first; reversed, the rows of one millisecond are back in their own order
    return events, ignored

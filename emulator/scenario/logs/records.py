"""What a log message says: Lambda's START/END/REPORT (text) or ``platform.*`` records (JSON log format), a timeout,
a runtime's error line, or a plain log line, with the request id it names."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import Any

from .lines import TIMESTAMP, LogLine, LogsError

REQUEST_ID = r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}"
_START = re.compile(rf"^START RequestId: (?P<id>{REQUEST_ID})(?: Version: (?P<version>\S+))?")
_END = re.compile(rf"^END RequestId: (?P<id>{REQUEST_ID})")
_REPORT = re.compile(rf"^REPORT RequestId: (?P<id>{REQUEST_ID})(?P<rest>.*)$", re.S)
_METRIC = re.compile(r"(?P<name>[A-Z][A-Za-z ]*?): (?P<value>[\d.]+) (?:ms|MB)")
_REQUIRED = ("Duration", "Billed Duration", "Memory Size", "Max Memory Used")
_TIMED_OUT = re.compile(rf"(?:^|\s)(?P<id>{REQUEST_ID})?\s*Task timed out after (?P<seconds>[\d.]+) seconds")
_ID_FIELD = re.compile(rf"^(?:\[[A-Z]+\]\t)?(?:{TIMESTAMP}\t)?(?P<id>{REQUEST_ID})\t(?P<level>[A-Z]+\t)?(?P<text>.*)$",
                       re.S)
_PY_ERROR = re.compile(r"^\[ERROR\] (?P<type>[A-Za-z_][\w.]*): (?P<message>.*)", re.S)  # awslambdaric, unhandled
_JSON_ERROR = re.compile(r'\{.*?"errorType"\s*:\s*"(?P<type>[^"]+)"', re.S)  # the outer error's, not a cause's


@dataclass(frozen=True)
class Record:
    kind: str  # start | end | report | timeout | error | log | init
    request_id: str | None
    line: LogLine
    metrics: dict[str, float] = field(default_factory=dict)  # report: durationMs, billedDurationMs, ...
    status: str | None = None  # report: success | error | timeout (JSON format, or a REPORT's "Status:")
    error_type: str | None = None  # error, report
    message: str = ""  # error: errorMessage; timeout: the seconds named


_TEXT_METRICS = {"Duration": "durationMs", "Billed Duration": "billedDurationMs", "Memory Size": "memorySizeMB",
                 "Max Memory Used": "maxMemoryUsedMB", "Init Duration": "initDurationMs",
                 "Restore Duration": "restoreDurationMs"}


def classify(line: LogLine) -> Record:
    """Raises ``LogsError`` for a REPORT line that was cut short (its metrics are what the scenario is made of)."""
    text = line.message.strip()
    if text.startswith("{"):
        try:
            data = json.loads(text)
        except ValueError:
            data = None
        if isinstance(data, dict):
            return _json_record(line, data)
    if match := _START.match(text):
        return Record("start", match["id"], line)
    if match := _END.match(text):
        return Record("end", match["id"], line)
    if match := _REPORT.match(text):
        return _text_report(line, match["id"], match["rest"])
    if text.startswith(("INIT_START", "INIT_REPORT")):
        return Record("init", None, line)
    if match := _TIMED_OUT.search(text):
        return Record("timeout", match["id"], line, message=match["seconds"])
    if match := _ID_FIELD.match(text):
        body = match["text"]
        error = _JSON_ERROR.search(body) if (match["level"] or "").startswith("ERROR") else None
        if error is not None and ("Invoke Error" in body or "Unhandled" in body):
            outer = _error(body)
            return Record("error", match["id"], line, error_type=str(outer.get("errorType", error["type"])),
                          message=str(outer.get("errorMessage", "")))
        return Record("log", match["id"], line)
    if match := _PY_ERROR.match(text):
        # awslambdaric separates the lines of one record with \r (one CloudWatch event): the first is the message
        first = re.split(r"[\r\n]", match["message"], maxsplit=1)[0]
        return Record("error", None, line, error_type=match["type"], message=first)
    return Record("log", None, line)


def _text_report(line: LogLine, request_id: str, rest: str) -> Record:
    metrics = {_TEXT_METRICS.get(m["name"].strip(), m["name"].strip()): float(m["value"])
               for m in _METRIC.finditer(rest)}
    missing = [name for name in _REQUIRED if _TEXT_METRICS[name] not in metrics]
    if missing:
        raise LogsError(f"{line.where}: truncated REPORT line of {request_id}: no {', '.join(missing)}; paste the "
                        f"whole line (it ends with 'Max Memory Used: N MB', and 'Init Duration' on a cold start)")
    status = re.search(r"Status: (\w+)", rest)
    error_type = re.search(r"Error Type: (\S+)", rest)
    return Record("report", request_id, line, metrics, status[1] if status else None,
                  error_type[1] if error_type else None)


def _json_record(line: LogLine, data: dict[str, Any]) -> Record:
    kind = data.get("type")
    record = data.get("record") if isinstance(data.get("record"), dict) else {}
    assert isinstance(record, dict)
    request_id = record.get("requestId") if isinstance(record.get("requestId"), str) else None
    if kind == "platform.start":
        return Record("start", request_id, line)
    if kind == "platform.runtimeDone":  # the runtime's own outcome; the report follows it
        return Record("log", request_id, line, status=record.get("status"), error_type=record.get("errorType"))
    if kind == "platform.report":
        metrics = record.get("metrics") if isinstance(record.get("metrics"), dict) else {}
        assert isinstance(metrics, dict)
        numbers = {k: float(v) for k, v in metrics.items() if isinstance(v, int | float) and not isinstance(v, bool)}
        missing = [k for k in ("durationMs", "billedDurationMs", "memorySizeMB") if k not in numbers]
        if missing:
            raise LogsError(f"{line.where}: truncated platform.report record of {request_id}: its metrics have no "
                            f"{', '.join(missing)}")
        return Record("report", request_id, line, numbers, record.get("status"), record.get("errorType"))
    if isinstance(kind, str) and kind.startswith("platform.init"):
        return Record("init", None, line)
    if isinstance(kind, str) and kind.startswith("platform."):
        return Record("log", request_id, line)
    # The function's own JSON log line: {"timestamp", "level", "requestId", "message", ...}; a failure carries an
    # errorType at the top (Python) or in its message (Node.js).
    request_id = data.get("requestId") if isinstance(data.get("requestId"), str) else None
    message = data.get("message")
    source = message if isinstance(message, dict) and "errorType" in message else data
    level = str(data.get("level") or data.get("log_level") or "").upper()
    if isinstance(source.get("errorType"), str) and level in ("ERROR", "FATAL", ""):
        return Record("error", request_id, line, error_type=source["errorType"],
                      message=str(source.get("errorMessage", "")))
    return Record("log", request_id, line)


def _error(body: str) -> dict[str, Any]:
    """The error object a runtime logged after "Invoke Error" (a line cut short gives nothing)."""
    try:
        data = json.loads(body[body.find("{"):])
    except ValueError:
        return {}
    return data if isinstance(data, dict) else {}

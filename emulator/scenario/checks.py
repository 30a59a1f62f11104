"""The checks of scenario values: ``_Checker`` (problems with their place), the check builders and the key tables."""

from __future__ import annotations

import dataclasses
import difflib
import re
import typing
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from ..config.settings import PLACEMENTS, RUNTIMES
from ..engine.freezer import CHOICES
from ..proxy import DIRECTIONS, TOXICS
from .model import FUNCTION_NAME, IDENTIFIER, UPSTREAM, Path_
from .placeholders import fill

_BAD = object()  # a value that failed its check (the problem is recorded)
Check = Callable[["_Checker", Any, Path_], Any]


class _Checker:
    """Collects every problem with its place in the file; the checks return the value, converted, or _BAD."""

    def __init__(self, path: Path, lines: dict[Path_, int], steps: list[str]):
        self.path = path
        self.lines = lines
        self.steps = steps  # each step's action, for naming steps in messages
        self.problems: list[tuple[int, str]] = []

    def error(self, where: Path_, message: str) -> Any:
        line = next((self.lines[where[:n]] for n in range(len(where), 0, -1) if where[:n] in self.lines), None)
        self.problems.append((line or 0, f"{self.path}{f':{line}' if line else ''}: {self.field(where)}: {message}"))
        return _BAD

    def field(self, where: Path_) -> str:
        parts = list(where)
        text = ""
        if len(parts) >= 2 and parts[0] == "steps" and isinstance(parts[1], int):
            action = self.steps[parts[1]] if parts[1] < len(self.steps) else ""
            text = f"step {parts[1] + 1}{f' ({action})' if action else ''}"
            parts = parts[3:] if len(parts) > 2 and parts[2] == action else parts[2:]
        for part in parts:
            text += f"[{part}]" if isinstance(part, int) else f"{'.' if text else ''}{part}"
        return text or "(top level)"

    def table(self, value: Any, where: Path_, keys: Mapping[str, Check], required: tuple[str, ...] = ()) -> Any:
        if not isinstance(value, dict):
            return self.error(where, f"expected a table, not {_kind(value)}")
        good = True
        for key in value:
            if key not in keys:
                near = difflib.get_close_matches(str(key), list(keys), n=1)
                hint = f"did you mean {near[0]!r}?" if near else f"known: {', '.join(keys)}"
                self.error((*where, key), f"unknown key; {hint}")
                good = False
        for key in required:
            if key not in value:
                self.error((*where, key), "required")
                good = False
        checked = {key: keys[key](self, item, (*where, key)) for key, item in value.items() if key in keys}
        if not good or any(item is _BAD for item in checked.values()):
            return _BAD
        return checked


def _kind(value: Any) -> str:
    return {bool: "a boolean", int: "an integer", float: "a number", str: "a string", list: "an array",
            dict: "a table"}.get(type(value), type(value).__name__)


def _number(minimum: float | None = None, maximum: float | None = None, *, above: float | None = None,
            below: float | None = None, integer: bool = False) -> Check:
    def check(ck: _Checker, value: Any, where: Path_) -> Any:
        if isinstance(value, bool) or not isinstance(value, int | float):
            return ck.error(where, f"expected {'an integer' if integer else 'a number'}, not {_kind(value)}")
        if integer and not float(value).is_integer():
            return ck.error(where, f"expected an integer, not {value!r}")
        for bad, text in ((minimum is not None and value < minimum, f">= {minimum}"),
                          (maximum is not None and value > maximum, f"<= {maximum}"),
                          (above is not None and value <= above, f"> {above}"),
                          (below is not None and value >= below, f"< {below}")):
            if bad:
                return ck.error(where, f"must be {text}, not {value!r}")
        return int(value) if integer else value

    return check


def _string(pattern: str | None = None, what: str = "") -> Check:
    def check(ck: _Checker, value: Any, where: Path_) -> Any:
        if not isinstance(value, str):
            return ck.error(where, f"expected a string, not {_kind(value)}")
        if pattern is not None and not re.fullmatch(pattern, value):
            return ck.error(where, f"{value!r} is not {what or f'of the form {pattern}'}")
        return value

    return check


def _choice(*choices: str) -> Check:
    def check(ck: _Checker, value: Any, where: Path_) -> Any:
        if value not in choices:
            return ck.error(where, f"{value!r}: choose one of {', '.join(choices)}")
        return value

    return check


def _boolean(ck: _Checker, value: Any, where: Path_) -> Any:
    return value if isinstance(value, bool) else ck.error(where, f"expected true or false, not {_kind(value)}")


def _regex(ck: _Checker, value: Any, where: Path_) -> Any:
    if not isinstance(value, str):
        return ck.error(where, f"expected a regular expression (a string), not {_kind(value)}")
    try:
        return re.compile(value)
    except re.error as exc:
        return ck.error(where, f"not a valid regular expression: {exc}")


def _pattern(ck: _Checker, value: Any, where: Path_) -> Any:
    """A regular expression that may hold ``${...}`` placeholders (checked by the loader): kept as text."""
    if not isinstance(value, str):
        return ck.error(where, f"expected a regular expression (a string), not {_kind(value)}")
    try:
        re.compile(fill(value, lambda _: "0"))
    except re.error as exc:
        return ck.error(where, f"not a valid regular expression: {exc}")
    return value


def _statements(ck: _Checker, value: Any, where: Path_) -> Any:
    """SQL: one statement (a string) or several (an array of strings), as a tuple."""
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list) or not value:
        return ck.error(where, f"expected a SQL statement (a string) or an array of them, not {_kind(value)}")
    out = []
    for index, item in enumerate(value):
        if not isinstance(item, str) or not item.strip():
            return ck.error((*where, index), f"expected a SQL statement (a non-empty string), not {_kind(item)}")
        out.append(item)
    return tuple(out)


def _anything(ck: _Checker, value: Any, where: Path_) -> Any:
    return value


def _table_of(item: Check, key_pattern: str | None = None, what: str = "") -> Check:
    def check(ck: _Checker, value: Any, where: Path_) -> Any:
        if not isinstance(value, dict):
            return ck.error(where, f"expected a table, not {_kind(value)}")
        out = {}
        for key, inner in value.items():
            if key_pattern is not None and not re.fullmatch(key_pattern, key):
                out[key] = ck.error((*where, key), f"{key!r} is not {what or f'of the form {key_pattern}'}")
            else:
                out[key] = item(ck, inner, (*where, key))
        return _BAD if any(v is _BAD for v in out.values()) else out

    return check


def _array_of(item: Check, min_items: int = 0) -> Check:
    def check(ck: _Checker, value: Any, where: Path_) -> Any:
        if not isinstance(value, list):
            return ck.error(where, f"expected an array, not {_kind(value)}")
        if len(value) < min_items:
            return ck.error(where, f"needs at least {min_items} item(s)")
        out = [item(ck, inner, (*where, index)) for index, inner in enumerate(value)]
        return _BAD if any(v is _BAD for v in out) else out

    return check


def _scalar(ck: _Checker, value: Any, where: Path_) -> Any:
    if not isinstance(value, str | int | float | bool):
        return ck.error(where, f"expected a string, number or boolean, not {_kind(value)}")
    return str(value).lower() if isinstance(value, bool) else str(value)


SECONDS = _number(above=0)
TOP_KEYS: dict[str, Check] = {
    "description": _string(),
    "links": _array_of(_string()),
    "runs": _number(1, integer=True),
    "required_fraction": _number(maximum=1, above=0),
    "freezer": _choice(*CHOICES),
    "functions": _anything,  # checked one by one below
    "databases": _anything,
    "faults": _anything,
    "services": _anything,
    "queues": _anything,  # checked by queue_checks
    "buckets": _anything,  # checked by bucket_checks
    "steps": _anything,
}
FUNCTION_KEYS: dict[str, Check] = {
    "code_dir": _string(),
    "handler": _string(),
    "runtime": _choice(*RUNTIMES),
    "timeout": _number(1, 900),
    "memory": _number(128, 10240, integer=True),
    "init_timeout": SECONDS,
    "freezer": _choice(*CHOICES),
    "env": _table_of(_scalar),
    "databases": _table_of(_string(IDENTIFIER, "a database name"), UPSTREAM, "a variable prefix (A-Z, 0-9, _)"),
    "upstreams": _table_of(_string(), UPSTREAM, "an upstream name (A-Z, 0-9, _)"),
    "reserved_concurrency": _number(0, integer=True),
    "placement": _choice(*PLACEMENTS),
    "idle_timeout": SECONDS,
    "max_age": SECONDS,
    "max_invocations": _number(1, integer=True),
    "recycle_jitter": _number(0, below=1),
    "prewarm": _number(0, integer=True),
    "replace_before_retire": _boolean,
    "reset_on_timeout": _boolean,
    "maximum_retry_attempts": _number(0, 2, integer=True),
    "maximum_event_age": _number(maximum=21600, above=0),
    "retry_delays": _array_of(_number(0)),
    "detect_leaks": _boolean,
    "lambda_paths": _boolean,
    "routes": _anything,  # checked by the engine (http_routes), as in a config file
    "url": _anything,
    "build": _boolean,
    "virtual_time": _boolean,  # also on when a step freezes virtually
    "standby": _boolean,
    "sqs": _anything,  # its SQS event source mappings, checked by queue_checks
    "schedules": _anything,  # its schedules, checked by bucket_checks
}
DATABASE_KEYS: dict[str, dict[str, Check]] = {
    "postgresql": {
        "kind": _anything,
        "setup": _statements,
        "idle_session_timeout_s": SECONDS,
        "idle_in_transaction_session_timeout_s": SECONDS,
        "statement_timeout_ms": _number(1, integer=True),
        "connection_limit": _number(0, integer=True),
        "settings": _table_of(_scalar),
    },
    "mysql": {
        "kind": _anything,
        "setup": _statements,
        "wait_timeout_s": _number(1, integer=True),
        "max_connections": _number(1, integer=True),
    },
}
FAULT_KEYS: dict[str, Check] = {
    "type": _choice(*TOXICS),
    "settings": _table_of(_anything),
    "direction": _choice(*DIRECTIONS),
    "function": _string(FUNCTION_NAME, "a function name"),
    "upstream": _string(UPSTREAM, "an upstream name"),
}
PRODUCTION_KEYS: dict[str, Check] = {  # what an invocation did in production (scenarios written from logs)
    "outcome": _string(r".+", "an outcome (ok, or an errorType)"),
    "request_id": _string(),
    "environment": _string(),
    "at_s": _number(0),
    "duration_ms": _number(0),
    "init_duration_ms": _number(0),
    "message": _string(),
}


def _production(ck: _Checker, value: Any, where: Path_) -> Any:
    return ck.table(value, where, PRODUCTION_KEYS, required=("outcome",))


HTTP_METHODS = ("GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS")
HTTP_KEYS: dict[str, Check] = {
    "function": _string(FUNCTION_NAME, "a function name"),
    "method": _choice(*HTTP_METHODS),
    "path": _string(r"/.*", "a path starting with /"),
    "headers": _table_of(_string()),
    "body": _string(),
    "url": _boolean,  # through the function's URL rather than its API routes
    "as": _string(IDENTIFIER, "a name (letters, digits, _ and -)"),
}
INVOCATION_KEYS: dict[str, Check] = {
    "function": _string(FUNCTION_NAME, "a function name"),
    "payload": _anything,
    "as": _string(IDENTIFIER, "a name (letters, digits, _ and -)"),
    "production": _production,
    "at": _number(0),  # seconds after the run began: the invocation starts then, and the next step does not wait
    "after": _string(IDENTIFIER, "the name of an earlier invoke step"),
}
SERVICE_KEYS: dict[str, Check] = {
    "command": _array_of(_string(), min_items=1),
    "cwd": _string(),
    "env": _table_of(_scalar),
    "ready_line": _regex,
    "ready_timeout": SECONDS,
}
SQL_KEYS: dict[str, Check] = {
    "database": _string(IDENTIFIER, "a database name"),
    "run": _statements,
}
AWAIT_KEYS: dict[str, Check] = {
    "function": _string(FUNCTION_NAME, "a function name"),
    "timeout": SECONDS,
}
EXPECT_KEYS: dict[str, Check] = {  # on an invocation
    "invoke": _string(IDENTIFIER, "the name of an invoke step"),
    "ok": _boolean,
    "error_type": _string(),
    "message": _pattern,
    "log": _pattern,
    "payload": _pattern,
    "not_log": _pattern,
    "not_payload": _pattern,
}
QUERY_KEYS: dict[str, Check] = {  # on a query's result
    "query": _string(r"(?s).*\S.*", "a SQL query"),
    "database": _string(IDENTIFIER, "a database name"),
    "equals": _anything,
}


def toxic_settings(kind: str) -> dict[str, tuple[Check, bool]]:
    """A toxic's settings, from its dataclass: name -> (check, required)."""
    cls = TOXICS[kind]
    hints = typing.get_type_hints(cls)
    out: dict[str, tuple[Check, bool]] = {}
    for item in dataclasses.fields(cls):  # type: ignore[arg-type]
        hint = hints[item.name]
        if typing.get_origin(hint) is typing.Literal:
            check = _choice(*typing.get_args(hint))
        elif hint is bool:
            check = _boolean
        else:
            check = _number(0, integer=hint is int)
        out[item.name] = (check, item.default is dataclasses.MISSING)
    return out

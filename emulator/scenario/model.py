"""The scenario data model: the checked file as frozen dataclasses, the names it may use, and ``ScenarioError``."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..errors import LambdaFreezeError

ACTIONS = ("invoke", "invoke_async", "stay_frozen", "fault", "kill_db_connections", "expect")
CONDITIONS = ("ok", "error_type", "message", "log", "payload")
IDENTIFIER = r"[A-Za-z_][A-Za-z0-9_-]{0,63}"
UPSTREAM = r"[A-Z][A-Z0-9_]*"
FUNCTION_NAME = r"[A-Za-z0-9_-]{1,64}"
DEFAULT_RUNS = 5
Path_ = tuple[str | int, ...]  # where a value sits in the file: ("steps", 2, "invoke", "as")


class ScenarioError(LambdaFreezeError):
    """A scenario file that cannot be run; ``problems`` are ``file:line: field: message`` lines."""

    error_type = "InvalidScenario"
    status = 400

    def __init__(self, problems: list[str]):
        super().__init__("\n".join(problems))
        self.problems = problems



@dataclass(frozen=True)
class DatabaseSpec:
    name: str
    kind: str  # "postgresql" | "mysql"
    settings: Mapping[str, Any]  # keyword arguments of PostgresRoles.create / MySQLUsers.create


@dataclass(frozen=True)
class FunctionSpec:
    name: str
    code_dir: Path
    freezer: str | None
    env: Mapping[str, str]
    databases: Mapping[str, str]  # variable prefix -> database, connected to directly
    upstreams: Mapping[str, str]  # upstream -> database (through the fault proxy) or host:port
    settings: Mapping[str, Any]  # FunctionConfig fields: handler, runtime, timeout_s, ...


@dataclass(frozen=True)
class FaultSpec:
    name: str
    type: str
    settings: Mapping[str, Any]
    direction: str
    function: str
    upstream: str


@dataclass(frozen=True)
class Expectation:
    invoke: str  # the key of the invoke step it checks
    ok: bool | None = None
    error_type: str | None = None
    message: re.Pattern[str] | None = None
    log: re.Pattern[str] | None = None
    payload: re.Pattern[str] | None = None


@dataclass(frozen=True)
class Step:
    number: int  # 1-based position in the file
    action: str
    label: str  # "invoke#2 (second)": the action, its count among steps of that action, a hint
    line: int | None
    function: str | None = None  # invoke, invoke_async
    payload: Any = None
    key: str | None = None  # invoke, invoke_async: what expect steps call it (its "as" name, else its label)
    seconds: float = 0.0  # stay_frozen
    fault: FaultSpec | None = None  # fault (add)
    remove: str | None = None  # fault (remove)
    databases: tuple[str, ...] = ()  # kill_db_connections
    expect: Expectation | None = None


@dataclass(frozen=True)
class Scenario:
    path: Path
    description: str
    links: tuple[str, ...]
    runs: int
    required_fraction: float
    freezer: str | None
    functions: Mapping[str, FunctionSpec]
    databases: Mapping[str, DatabaseSpec]
    faults: Mapping[str, FaultSpec]
    steps: tuple[Step, ...]

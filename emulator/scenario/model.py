"""The scenario data model: the checked file as frozen dataclasses, the names it may use, and ``ScenarioError``."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..config.events import BucketConfig, QueueConfig, ScheduleConfig, SqsMappingConfig
from ..errors import LambdaFreezeError

ACTIONS = (
    "invoke", "invoke_async", "stay_frozen", "fault", "kill_db_connections", "sql", "await_async", "expect", "http",
    "send_message", "await_queue", "put_object", "trigger",
)
CONDITIONS = ("ok", "error_type", "message", "log", "payload", "not_log", "not_payload")  # on an invocation
IDENTIFIER = r"[A-Za-z_][A-Za-z0-9_-]{0,63}"
UPSTREAM = r"[A-Z][A-Z0-9_]*"
FUNCTION_NAME = r"[A-Za-z0-9_-]{1,64}"
DEFAULT_RUNS = 5
DEFAULT_READY_TIMEOUT_S = 10.0  # a service's start, until it is ready
DEFAULT_AWAIT_ASYNC_S = 60.0  # await_async: until the queues are drained
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
    setup: tuple[str, ...] = ()  # statements run as the run's login before the services and functions start


@dataclass(frozen=True)
class ServiceSpec:
    """A process a scenario needs (a server the function talks to), started before the functions of every
    run and stopped after it. ``command`` and ``env`` may hold placeholders (``${port}``, ``${python}``, ...)."""

    name: str
    command: tuple[str, ...]
    cwd: Path
    env: Mapping[str, str]
    ready_line: re.Pattern[str] | None  # ready when a line of its output matches; a (?P<port>) group is its port
    auto_port: bool  # ${port} in its command or env: a free port is chosen for it every run
    ready_timeout_s: float


@dataclass(frozen=True)
class FunctionSpec:
    name: str
    code_dir: Path
    freezer: str | None
    env: Mapping[str, str]
    databases: Mapping[str, str]  # variable prefix -> database, connected to directly
    upstreams: Mapping[str, str]  # upstream -> database, service or host:port, optionally " close=fin|rst|mirror"
    settings: Mapping[str, Any]  # FunctionConfig fields: handler, runtime, timeout_s, ...
    sqs: tuple[SqsMappingConfig, ...] = ()  # its SQS event source mappings, created once it is served
    schedules: tuple[ScheduleConfig, ...] = ()  # its schedules (FUNCTION.NAME), added once it is served


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
    """What must hold of an invocation (``invoke``) or of a query's result (``query``). The regular expressions are
    kept as text: ``${invoke.NAME.request_id}`` and ``${invoke.NAME.payload.KEY}`` in them are filled in when the
    step runs, then they are compiled."""

    invoke: str | None = None  # the key of the invoke step it checks
    ok: bool | None = None
    error_type: str | None = None
    message: str | None = None
    log: str | None = None
    payload: str | None = None
    not_log: str | None = None
    not_payload: str | None = None
    query: str | None = None  # a SQL query, run as the run's login of ``database``
    database: str | None = None
    equals: Any = None
    queue: str | None = None  # a declared queue whose counts (``counts``) must be what they say
    counts: Mapping[str, Any] | None = None  # processed, duplicated, in_queue, in_dlq: N, or {"at_least": N}


@dataclass(frozen=True)
class Step:
    number: int  # 1-based position in the file
    action: str
    label: str  # "invoke#2 (second)": the action, its count among steps of that action, a hint
    line: int | None
    function: str | None = None  # invoke, invoke_async
    payload: Any = None
    key: str | None = None  # invoke, invoke_async: what expect steps call it (its "as" name, else its label)
    seconds: float = 0.0  # stay_frozen; await_async: how long it may wait
    virtual: bool = False  # stay_frozen: the runtime's clocks move by ``seconds``, with no real wait
    fault: FaultSpec | None = None  # fault (add)
    remove: str | None = None  # fault (remove)
    databases: tuple[str, ...] = ()  # kill_db_connections; sql: the one database
    statements: tuple[str, ...] = ()  # sql
    functions: tuple[str, ...] = ()  # await_async
    expect: Expectation | None = None
    production: Mapping[str, Any] | None = None  # invoke: its outcome in production (outcome, request_id, ...)
    at: float | None = None  # invoke: started this many seconds after the run began, without waiting for it
    after: str | None = None  # invoke with at: and not before the invocation of this key has returned
    request: Mapping[str, Any] | None = None  # http: method, path, headers, body, url (through the function URL)
    queue: str | None = None  # send_message, await_queue: a declared queue
    messages: tuple[Mapping[str, Any], ...] = ()  # send_message: SendMessage's fields, one per message
    counts: Mapping[str, int] | None = None  # await_queue: what it waits for (processed, in_dlq, in_queue)
    bucket: str | None = None  # put_object: a declared bucket
    objects: tuple[tuple[str, str], ...] = ()  # put_object: (key, body) of each object
    schedule: str | None = None  # trigger: a declared schedule, FUNCTION.NAME


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
    services: Mapping[str, ServiceSpec] = field(default_factory=dict)
    queues: Mapping[str, QueueConfig] = field(default_factory=dict)  # created on the embedded SQS endpoint
    buckets: Mapping[str, BucketConfig] = field(default_factory=dict)  # created on the embedded S3 endpoint

"""Bug-report scenarios: a file (functions, databases, faults, steps, expectations) that ``lambda-freeze repro``
replays N times, each run with fresh functions, environments and database logins, and a report of how often the
expected outcome reproduced, with the timeline of one run.

    lambda-freeze repro scenarios/python/asyncpg_pool_broken.toml --runs 10 --trace trace.json

The format is documented in ``scenarios/README.md`` and ``scenarios/schema.json``; ``load()`` checks a file and
names the line and the field of every problem.

``model`` (the dataclasses), ``read`` (the file and its lines), ``checks``, ``load``, ``steps`` and
``placeholders`` (checking), ``prerequisites`` and ``runner`` (the runs), ``services`` (processes the functions
talk to), ``sql`` (statements and queries as the run's login), ``report`` (the report) and ``command``
(``lambda-freeze repro``).
"""

from .checks import (
    AWAIT_KEYS,
    DATABASE_KEYS,
    EXPECT_KEYS,
    FAULT_KEYS,
    FUNCTION_KEYS,
    INVOCATION_KEYS,
    QUERY_KEYS,
    SERVICE_KEYS,
    SQL_KEYS,
    TOP_KEYS,
    toxic_settings,
)
from .command import add_arguments, run
from .load import load, validate
from .model import ACTIONS, Scenario, ScenarioError
from .prerequisites import CannotRun, preflight

__all__ = [
    "ACTIONS",
    "AWAIT_KEYS",
    "DATABASE_KEYS",
    "EXPECT_KEYS",
    "FAULT_KEYS",
    "FUNCTION_KEYS",
    "INVOCATION_KEYS",
    "QUERY_KEYS",
    "SERVICE_KEYS",
    "SQL_KEYS",
    "TOP_KEYS",
    "CannotRun",
    "Scenario",
    "ScenarioError",
    "add_arguments",
    "load",
    "preflight",
    "run",
    "toxic_settings",
    "validate",
]

"""The pytest plugin (entry point ``pytest11``): fixtures that run functions under lambda-freeze, invoke them,
keep them frozen, and give them databases whose server-side settings a test may change for itself.

    def test_stale_pool(lambda_freeze, lambda_freeze_postgres):
        db = lambda_freeze_postgres(idle_session_timeout_s=1)
        fn = lambda_freeze.function("samples/python/asyncpg_pool/broken", env=db.env())
        assert fn.invoke({}).ok
        fn.stay_frozen(2)
        assert fn.invoke({}).error_type == "ConnectionDoesNotExistError"

A function's API routes and function URL are served by the HTTP front door at ``fn.http``:

    fn = lambda_freeze.function("samples/python/http_api/fixed", routes=["GET /orders/{id}"])
    assert requests.get(fn.http + "/orders/42").status_code == 200

Everything a fixture starts (emulators, runtimes, cgroups, roles, users) is stopped or dropped when the test ends.
Works with pytest-xdist (free ports only, per-test roles) and pytest-asyncio in strict mode (the fixtures are
synchronous; ``await asyncio.to_thread(fn.invoke, ...)`` from async tests).
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:  # the engine is imported when a fixture is used, not with every pytest run
    from .databases import MySQLUsers, PostgresRoles
    from .harness import LambdaFreeze
    from .harness_aws import AwsResources


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("lambda-freeze")
    group.addoption(
        "--lambda-freeze-freezer",
        default=None,
        help="freezer backend for functions started by the lambda_freeze fixture (default: auto)",
    )
    parser.addini("lambda_freeze_freezer", "freezer backend for the lambda_freeze fixture", default="auto")


def pytest_unconfigure(config: pytest.Config) -> None:
    """The emulator started for a next test that never came stops with the session (its processes, its cgroups)."""
    harness = sys.modules.get("emulator.harness")
    if harness is not None:
        harness.spares.close()


def _freezer(config: pytest.Config) -> str:
    return str(config.getoption("--lambda-freeze-freezer") or config.getini("lambda_freeze_freezer") or "auto")


def _in_ci() -> bool:
    return os.environ.get("CI", "").lower() == "true"


@pytest.fixture
def lambda_freeze(request: pytest.FixtureRequest) -> Iterator[LambdaFreeze]:
    """Factory: ``lambda_freeze.function(code_dir, handler=..., runtime=..., env=..., **settings)``."""
    from .harness import LambdaFreeze

    # A relative code directory is found beside the test file first, then in the working directory.
    # The next test's emulator starts while this one's first INIT runs (``spare``).
    harness = LambdaFreeze(freezer=_freezer(request.config), base_dir=request.path.parent, spare=True)
    yield harness
    harness.close()


def _unavailable(what: str, error: Exception) -> None:
    message = f"{what} is not reachable ({error}); start it, or point the DSN variable at one"
    if _in_ci():
        pytest.fail(message)
    pytest.skip(message)


@pytest.fixture
def lambda_freeze_postgres() -> Iterator[PostgresRoles]:
    """Factory: a login role of its own on the PostgreSQL server of ``LAMBDA_FREEZE_PG_DSN``
    (default ``postgresql://postgres@127.0.0.1:5432/test``), with server settings for its sessions:
    ``lambda_freeze_postgres(idle_session_timeout_s=1, connection_limit=2)``."""
    from .databases import PostgresRoles, postgres_dsn

    roles = PostgresRoles(postgres_dsn())
    try:
        roles.check()
    except OSError as exc:
        _unavailable("PostgreSQL", exc)
    yield roles
    roles.drop_all()


@pytest.fixture
def lambda_freeze_mysql() -> Iterator[MySQLUsers]:
    """Factory: a user of its own on the MySQL/MariaDB server of ``LAMBDA_FREEZE_MYSQL_DSN``
    (default ``mysql://root@127.0.0.1:3306/test``): ``lambda_freeze_mysql(wait_timeout_s=1, max_connections=1)``."""
    from .databases import MySQLUsers, mysql_dsn

    users = MySQLUsers(mysql_dsn())
    try:
        users.check()
    except OSError as exc:
        _unavailable("MySQL", exc)
    yield users
    users.drop_all()


@pytest.fixture
def lambda_freeze_aws(request: pytest.FixtureRequest) -> Iterator[AwsResources]:
    """Queues, buckets and functions with SQS mappings on an embedded SQS/S3 endpoint (``LAMBDA_FREEZE_AWS_ENDPOINT``
    names another): ``.create_queue(name, ...)``, ``.create_bucket(name, notify_queue=...)``,
    ``.function(code_dir, sqs=[{"queue": name, ...}])``, ``.client("sqs")``, ``.count(queue)``."""
    from .errors import ConfigError
    from .harness_aws import AwsResources

    resources = AwsResources(os.environ.get("LAMBDA_FREEZE_AWS_ENDPOINT"), freezer=_freezer(request.config))
    try:
        resources.start()
    except ConfigError as exc:
        _unavailable("an SQS/S3 endpoint", exc)
    yield resources
    resources.close()

"""Per-test database identities: a PostgreSQL role or a MySQL/MariaDB user of its own, whose server-side
settings (idle session timeouts, connection limits) a test changes without touching any other test."""

from __future__ import annotations

import asyncio
import os
import secrets
import threading
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar
from urllib.parse import urlsplit

T = TypeVar("T")

DEFAULT_PG_DSN = "postgresql://postgres@127.0.0.1:5432/test"
DEFAULT_MYSQL_DSN = "mysql://root@127.0.0.1:3306/test"


def postgres_dsn() -> str:
    return os.environ.get("LAMBDA_FREEZE_PG_DSN", DEFAULT_PG_DSN)


def mysql_dsn() -> str:
    return os.environ.get("LAMBDA_FREEZE_MYSQL_DSN", DEFAULT_MYSQL_DSN)


def _run(factory: Callable[[], Awaitable[T]]) -> T:
    """Run a coroutine on a loop of its own in a thread: callable from sync code, inside or outside a loop."""
    result: list[T] = []
    error: list[BaseException] = []

    def target() -> None:
        try:
            result.append(asyncio.run(factory()))  # type: ignore[arg-type]
        except BaseException as exc:  # handed to the caller
            error.append(exc)

    thread = threading.Thread(target=target)
    thread.start()
    thread.join()
    if error:
        raise error[0]
    return result[0]


def _name() -> str:
    return f"lf_{secrets.token_hex(5)}"


@dataclass(frozen=True)
class DatabaseLogin:
    """Where and as whom a function connects; ``env()`` gives the variables the samples read."""

    kind: str  # "postgresql" | "mysql"
    host: str
    port: int
    user: str
    database: str
    init_command: str | None = None  # MySQL: session settings the server cannot hold per user
    settings: dict[str, str] = field(default_factory=dict)
    admin: PostgresRoles | MySQLUsers | None = field(default=None, compare=False, repr=False)
    idle_timeout_s: float | None = None  # idle_session_timeout / wait_timeout: what a virtual freeze is judged by

    def sessions(self) -> int:
        """How many sessions this login has open on the server now."""
        assert self.admin is not None
        return self.admin.sessions(self)

    def kill_sessions(self) -> int:
        """Close every session of this login from the server side, as an operator or a failover would."""
        assert self.admin is not None
        return self.admin.kill_sessions(self)

    @property
    def dsn(self) -> str:
        return f"{self.kind}://{self.user}@{self.host}:{self.port}/{self.database}"

    def env(self, prefix: str = "DB", *, host: str | None = None, port: int | None = None) -> dict[str, str]:
        env = {
            f"{prefix}_HOST": host or self.host,
            f"{prefix}_PORT": str(port or self.port),
            f"{prefix}_USER": self.user,
            f"{prefix}_NAME": self.database,
            # the same as one URL, for a function that reads DATABASE_URL-style settings
            f"{prefix}_URL": f"{self.kind}://{self.user}@{host or self.host}:{port or self.port}/{self.database}",
        }
        if self.init_command:
            env[f"{prefix}_INIT_COMMAND"] = self.init_command
        return env


_ROLES_LOCK = 0x6C66_726F_6C65  # pg_advisory_xact_lock key shared by every PostgresRoles ("lfrole")


class PostgresRoles:
    def __init__(self, dsn: str):
        self.admin_dsn = dsn
        parts = urlsplit(dsn)
        self.host = parts.hostname or "127.0.0.1"
        self.port = parts.port or 5432
        self.database = parts.path.lstrip("/") or "postgres"
        self.logins: list[DatabaseLogin] = []

    async def _execute(self, *statements: str, serialized: bool = False) -> list[Any]:
        """``serialized``: in one transaction that holds this class's advisory lock first. Granting on (or, with
        ``DROP OWNED``, revoking from) the one database and its ``public`` schema rewrites their catalog rows, and two
        sessions doing it at once fail with ``tuple concurrently updated``: tests in parallel take turns."""
        import asyncpg

        conn = await asyncpg.connect(self.admin_dsn, timeout=10)
        try:
            if not serialized:
                return [await conn.fetch(statement) for statement in statements]
            async with conn.transaction():
                await conn.execute(f"SELECT pg_advisory_xact_lock({_ROLES_LOCK})")
                return [await conn.fetch(statement) for statement in statements]
        finally:
            await conn.close()

    def check(self) -> None:
        try:
            _run(lambda: self._execute("SELECT 1"))
        except OSError:
            raise
        except Exception as exc:
            raise OSError(str(exc)) from exc

    def create(
        self,
        *,
        idle_session_timeout_s: float | None = None,
        idle_in_transaction_session_timeout_s: float | None = None,
        statement_timeout_ms: int | None = None,
        connection_limit: int | None = None,
        settings: dict[str, str] | None = None,
        own_schema: bool = False,
    ) -> DatabaseLogin:
        """A role that may connect to the admin DSN's database; ``settings`` apply to every session it opens. With
        ``own_schema``, a schema named after the role, first on its default ``search_path`` (``"$user", public``):
        the tables it creates without a schema name are its own, and go with it."""
        name = _name()
        values = dict(settings or {})
        if idle_session_timeout_s is not None:
            values["idle_session_timeout"] = f"{int(idle_session_timeout_s * 1000)}ms"
        if idle_in_transaction_session_timeout_s is not None:
            values["idle_in_transaction_session_timeout"] = f"{int(idle_in_transaction_session_timeout_s * 1000)}ms"
        if statement_timeout_ms is not None:
            values["statement_timeout"] = f"{statement_timeout_ms}ms"
        limit = f" CONNECTION LIMIT {connection_limit}" if connection_limit is not None else ""
        statements = [
            f'CREATE ROLE "{name}" LOGIN{limit}',
            f'GRANT ALL ON DATABASE "{self.database}" TO "{name}"',
            f'GRANT ALL ON SCHEMA public TO "{name}"',
            *([f'CREATE SCHEMA "{name}" AUTHORIZATION "{name}"'] if own_schema else []),
            *(f"ALTER ROLE \"{name}\" SET {key} = '{value}'" for key, value in values.items()),
        ]
        _run(lambda: self._execute(*statements, serialized=True))
        login = DatabaseLogin(
            "postgresql",
            self.host,
            self.port,
            name,
            self.database,
            settings=values,
            admin=self,
            idle_timeout_s=idle_session_timeout_s,
        )
        self.logins.append(login)
        return login

    def sessions(self, login: DatabaseLogin) -> int:
        rows = _run(lambda: self._execute(f"SELECT count(*) FROM pg_stat_activity WHERE usename = '{login.user}'"))
        return int(rows[0][0][0])

    def kill_sessions(self, login: DatabaseLogin) -> int:
        """Terminate every session of the role, as an operator or a failover would."""
        rows = _run(
            lambda: self._execute(
                f"SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE usename = '{login.user}'"
            )
        )
        return len(rows[0])

    def drop_all(self) -> None:
        for login in self.logins:
            _run(
                lambda login=login: self._execute(  # type: ignore[misc]
                    f"SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE usename = '{login.user}'",
                    f'DROP OWNED BY "{login.user}"',
                    f'DROP ROLE "{login.user}"',
                    serialized=True,
                )
            )
        self.logins.clear()

    __call__ = create  # the fixture is the factory itself: lambda_freeze_postgres(idle_session_timeout_s=1)


class MySQLUsers:
    def __init__(self, dsn: str):
        parts = urlsplit(dsn)
        self.host = parts.hostname or "127.0.0.1"
        self.port = parts.port or 3306
        self.admin_user = parts.username or "root"
        self.admin_password = parts.password or ""
        self.database = parts.path.lstrip("/") or "test"
        self.logins: list[DatabaseLogin] = []

    def _execute(self, *statements: str) -> list[tuple[Any, ...]]:
        import pymysql

        conn = pymysql.connect(
            host=self.host, port=self.port, user=self.admin_user, password=self.admin_password, connect_timeout=10
        )
        rows: list[tuple[Any, ...]] = []
        try:
            with conn.cursor() as cursor:
                for statement in statements:
                    cursor.execute(statement)
                    rows.extend(cursor.fetchall())
            conn.commit()
        finally:
            conn.close()
        return rows

    def check(self) -> None:
        try:
            self._execute("SELECT 1")
        except Exception as exc:  # pymysql.err.OperationalError and friends
            raise OSError(str(exc)) from exc

    def create(
        self, *, wait_timeout_s: int | None = None, max_connections: int | None = None, own_database: bool = False
    ) -> DatabaseLogin:
        """A user with rights on the admin DSN's database, or, with ``own_database``, on a database of its own
        (named after it, dropped with it). MariaDB keeps ``wait_timeout`` per session only, so it comes back as
        ``init_command`` (``DB_INIT_COMMAND`` in ``env()``), which the samples run on connect."""
        name = _name()
        database = name if own_database else self.database
        limit = f" WITH MAX_USER_CONNECTIONS {max_connections}" if max_connections is not None else ""
        self._execute(
            *([f"CREATE DATABASE `{database}`"] if own_database else []),
            f"CREATE USER '{name}'@'%'{limit}",
            f"GRANT ALL ON `{database}`.* TO '{name}'@'%'",
        )
        init = f"SET SESSION wait_timeout = {int(wait_timeout_s)}" if wait_timeout_s is not None else None
        login = DatabaseLogin(
            "mysql", self.host, self.port, name, database, init_command=init, admin=self, idle_timeout_s=wait_timeout_s
        )
        self.logins.append(login)
        return login

    def _session_ids(self, login: DatabaseLogin) -> list[int]:
        rows = self._execute(f"SELECT ID FROM information_schema.PROCESSLIST WHERE USER = '{login.user}'")
        return [int(row[0]) for row in rows]

    def sessions(self, login: DatabaseLogin) -> int:
        return len(self._session_ids(login))

    def kill_sessions(self, login: DatabaseLogin) -> int:
        ids = self._session_ids(login)
        for session in ids:
            try:
                self._execute(f"KILL CONNECTION {session}")
            except Exception:  # gone already
                continue
        return len(ids)

    def drop_all(self) -> None:
        for login in self.logins:
            self.kill_sessions(login)
            self._execute(f"DROP USER IF EXISTS '{login.user}'@'%'")
            if login.database != self.database:  # its own
                self._execute(f"DROP DATABASE IF EXISTS `{login.database}`")
        self.logins.clear()

    __call__ = create

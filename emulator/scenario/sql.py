"""SQL in a scenario: statements and queries run as the run's own login (what the function sees), and a query's
result as a plain value that an ``expect`` step compares with the file's ``equals``."""

from __future__ import annotations

import datetime
import decimal
import uuid
from collections.abc import Sequence
from typing import Any

from ..databases import DatabaseLogin, _run


def execute(login: DatabaseLogin, statements: Sequence[str]) -> list[tuple[Any, ...]]:
    """Run the statements in order, in one session of ``login``; the rows of the last one."""
    if login.kind == "postgresql":
        return _run(lambda: _postgres(login, statements))
    return _mysql(login, statements)


async def _postgres(login: DatabaseLogin, statements: Sequence[str]) -> list[tuple[Any, ...]]:
    import asyncpg

    conn = await asyncpg.connect(host=login.host, port=login.port, user=login.user, database=login.database,
                                 timeout=10)
    try:
        rows: list[Any] = []
        for statement in statements:
            rows = await conn.fetch(statement)
        return [tuple(row.values()) for row in rows]
    finally:
        await conn.close()


def _mysql(login: DatabaseLogin, statements: Sequence[str]) -> list[tuple[Any, ...]]:
    import pymysql

    conn = pymysql.connect(host=login.host, port=login.port, user=login.user, password="", database=login.database,
                           connect_timeout=10)
    try:
        rows: list[tuple[Any, ...]] = []
        with conn.cursor() as cursor:
            for statement in statements:
                cursor.execute(statement)
                rows = list(cursor.fetchall())
        conn.commit()
        return rows
    finally:
        conn.close()


def result(rows: list[tuple[Any, ...]]) -> Any:
    """One row of one column: that value; otherwise the rows, each its one value or an array of its values."""
    if len(rows) == 1 and len(rows[0]) == 1:
        return plain(rows[0][0])
    return [plain(row[0]) if len(row) == 1 else [plain(value) for value in row] for row in rows]


def plain(value: Any) -> Any:
    """A database value as TOML/JSON would write it: numbers, strings, booleans, arrays, null."""
    if isinstance(value, decimal.Decimal):
        return int(value) if value == value.to_integral_value() else float(value)
    if isinstance(value, datetime.date | datetime.time):
        return value.isoformat()
    if isinstance(value, bytes | bytearray | memoryview):
        return bytes(value).decode("utf-8", "replace")
    if isinstance(value, uuid.UUID):
        return str(value)
    if isinstance(value, list | tuple):
        return [plain(item) for item in value]
    return value


def same(a: Any, b: Any) -> bool:
    """Equal as JSON values are: 5 == 5.0, but true is not 1."""
    if isinstance(a, bool) or isinstance(b, bool):
        return isinstance(a, bool) and isinstance(b, bool) and a == b
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(same(a[k], b[k]) for k in a)
    return bool(a == b) and isinstance(a, int | float) == isinstance(b, int | float)

"""The same handler, its pooled connection validated on acquire: a connection the server closed while the
environment was frozen is noticed by a cheap ping and replaced before the request's query runs."""

import asyncio
import json
import os

import asyncpg

loop = asyncio.new_event_loop()
asyncio.set_event_loop(loop)
pool = loop.run_until_complete(
    asyncpg.create_pool(
        host=os.environ["DB_HOST"],
        port=int(os.environ["DB_PORT"]),
        user=os.environ["DB_USER"],
        database=os.environ["DB_NAME"],
        min_size=1,
        max_size=1,
    )
)
STALE = (
    asyncpg.exceptions.ConnectionDoesNotExistError,
    asyncpg.exceptions.PostgresConnectionError,
    asyncpg.exceptions.InterfaceError,
    ConnectionError,
)


async def acquire_valid():
    """Acquire and ping; a dead connection is released (the pool reconnects) and the acquire tried once more."""
    for attempt in (1, 2):
        conn = await pool.acquire()
        try:
            await conn.execute("SELECT 1")
            return conn
        except STALE:
            await pool.release(conn)
            if attempt == 2:
                raise
    raise AssertionError("unreachable")


async def order(order_id):
    conn = await acquire_valid()
    try:
        return await conn.fetchval("SELECT pg_backend_pid()"), order_id
    finally:
        await pool.release(conn)


def handler(event, context):
    backend, order_id = loop.run_until_complete(order(event["pathParameters"]["id"]))
    return {"statusCode": 200, "body": json.dumps({"order": order_id, "backend_pid": backend})}

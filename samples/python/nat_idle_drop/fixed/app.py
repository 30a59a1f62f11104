"""The same pool with a pre-ping of PING_TIMEOUT_S: a connection whose flow the network dropped does not answer
the ping, and is terminated and replaced before the handler's query."""

import asyncio
import os

import asyncpg

QUERY_TIMEOUT_S = float(os.environ.get("QUERY_TIMEOUT_S", "2"))
PING_TIMEOUT_S = float(os.environ.get("PING_TIMEOUT_S", "0.3"))

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


async def acquire_live():
    for attempt in (1, 2):
        conn = await pool.acquire()
        try:
            await conn.execute("SELECT 1", timeout=PING_TIMEOUT_S)
            return conn
        except (TimeoutError, asyncpg.exceptions.ConnectionDoesNotExistError, asyncpg.InterfaceError, ConnectionError):
            conn.terminate()
            await pool.release(conn)
            if attempt == 2:
                raise
    raise AssertionError("unreachable")


async def query():
    conn = await acquire_live()
    try:
        return await conn.fetchval("SELECT pg_backend_pid()", timeout=QUERY_TIMEOUT_S)
    finally:
        await pool.release(conn)


def handler(event, context):
    return {"backend_pid": loop.run_until_complete(query())}

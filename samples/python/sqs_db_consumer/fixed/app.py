"""The same consumer with the pool validated on acquire (samples/python/asyncpg_pool/fixed): the connection the
server closed while the environment was frozen is replaced before the batch's query, and the batch succeeds on its
first delivery."""

import asyncio
import os
import pathlib

import asyncpg

PROCESSED = pathlib.Path(os.environ.get("PROCESSED_DIR", "/tmp/sqs-db-consumer"))
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
    """Acquire, ping, and on a dead connection release it (the pool reconnects) and try once more."""
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


async def query():
    conn = await acquire_valid()
    try:
        return await conn.fetchval("SELECT pg_backend_pid()")
    finally:
        await pool.release(conn)


def handler(event, context):
    backend_pid = loop.run_until_complete(query())  # the batch's database work
    for record in event["Records"]:
        with (PROCESSED / record["messageId"]).open("a") as out:
            out.write(f"{record['attributes']['ApproximateReceiveCount']} {backend_pid}\n")
    return {}

"""The same pool with pool_recycle shorter than the server's wait_timeout: on acquire, a connection idle for
longer is closed and replaced. The loop's clock is monotonic and keeps running while frozen, so the age counts
the frozen time too."""

import asyncio
import os

import aiomysql

WAIT_TIMEOUT_S = float(os.environ.get("DB_WAIT_TIMEOUT_S", "28800"))

loop = asyncio.new_event_loop()
asyncio.set_event_loop(loop)
pool = loop.run_until_complete(
    aiomysql.create_pool(
        host=os.environ["DB_HOST"],
        port=int(os.environ["DB_PORT"]),
        user=os.environ["DB_USER"],
        db=os.environ["DB_NAME"],
        init_command=os.environ.get("DB_INIT_COMMAND"),
        minsize=1,
        maxsize=1,
        pool_recycle=WAIT_TIMEOUT_S / 2,
    )
)


async def query():
    async with pool.acquire() as conn, conn.cursor() as cursor:
        await cursor.execute("SELECT CONNECTION_ID()")
        (connection_id,) = await cursor.fetchone()
        return connection_id


def handler(event, context):
    return {"connection_id": loop.run_until_complete(query())}

"""An aiomysql pool created during INIT on a global event loop: the server's wait_timeout closes the idle
connection while the environment is frozen, and the next invocation gets it from the pool."""

import asyncio
import os

import aiomysql

loop = asyncio.new_event_loop()
asyncio.set_event_loop(loop)
pool = loop.run_until_complete(
    aiomysql.create_pool(
        host=os.environ["DB_HOST"],
        port=int(os.environ["DB_PORT"]),
        user=os.environ["DB_USER"],
        db=os.environ["DB_NAME"],
        # The server's wait_timeout, per session here (a test cannot change it globally); RDS sets it globally.
        init_command=os.environ.get("DB_INIT_COMMAND"),
        minsize=1,
        maxsize=1,
    )
)


async def query():
    async with pool.acquire() as conn, conn.cursor() as cursor:
        await cursor.execute("SELECT CONNECTION_ID()")
        (connection_id,) = await cursor.fetchone()
        return connection_id


def handler(event, context):
    return {"connection_id": loop.run_until_complete(query())}

"""An asyncpg pool created during INIT on a global event loop that each invocation drives with
run_until_complete: the common pattern, and the one that breaks once the server closes an idle connection."""

import asyncio
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


async def query():
    async with pool.acquire() as conn:
        return await conn.fetchval("SELECT pg_backend_pid()")


def handler(event, context):
    return {"backend_pid": loop.run_until_complete(query())}

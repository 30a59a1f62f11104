"""A pooled connection from INIT on a global loop; the network in between (a NAT gateway, Lambda's own network
layer: about 350 s) silently forgets idle flows. After a long enough freeze the next query vanishes into it and
the invocation hangs until the function times out."""

import asyncio
import os

import asyncpg

QUERY_TIMEOUT_S = float(os.environ.get("QUERY_TIMEOUT_S", "2"))

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
        # The driver's own timeout fires, but handing the connection back to the pool then waits on the dead
        # connection: the invocation ends with the function's timeout.
        return await conn.fetchval("SELECT pg_backend_pid()", timeout=QUERY_TIMEOUT_S)


def handler(event, context):
    return {"backend_pid": loop.run_until_complete(query())}

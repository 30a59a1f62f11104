"""An asyncpg pool whose event loop runs in a background thread. While the process runs, the loop notices a
connection the server closed and the pool replaces it; frozen, nothing notices, and if the network lost the
server's FIN meanwhile, the next query goes into a dead connection and waits for its own timeout."""

import asyncio
import os
import threading

import asyncpg

QUERY_TIMEOUT_S = float(os.environ.get("QUERY_TIMEOUT_S", "2"))

loop = asyncio.new_event_loop()
threading.Thread(target=loop.run_forever, name="db-loop", daemon=True).start()


async def create_pool():
    return await asyncpg.create_pool(
        host=os.environ["DB_HOST"],
        port=int(os.environ["DB_PORT"]),
        user=os.environ["DB_USER"],
        database=os.environ["DB_NAME"],
        min_size=1,
        max_size=1,
    )


pool = asyncio.run_coroutine_threadsafe(create_pool(), loop).result()


async def query():
    async with pool.acquire() as conn:
        return await conn.fetchval("SELECT pg_backend_pid()")


def handler(event, context):
    # The handler's own timeout on the loop thread's answer.
    return {"backend_pid": asyncio.run_coroutine_threadsafe(query(), loop).result(timeout=QUERY_TIMEOUT_S)}

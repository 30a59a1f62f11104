"""An HTTP API handler with an asyncpg pool created during INIT: the pooled connection is reused by every request,
and the first request after the server closed it (while the environment was frozen) fails with a 500."""

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


async def order(order_id):
    async with pool.acquire() as conn:
        return await conn.fetchval("SELECT pg_backend_pid()"), order_id


def handler(event, context):
    backend, order_id = loop.run_until_complete(order(event["pathParameters"]["id"]))
    return {"statusCode": 200, "body": json.dumps({"order": order_id, "backend_pid": backend})}

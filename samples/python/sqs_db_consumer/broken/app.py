"""An SQS consumer holding an asyncpg pool created during INIT (samples/python/asyncpg_pool/broken): batches
arrive with long gaps, the environment stays frozen past the server's idle session timeout, and the first batch
after the gap fails on the dead connection. Nothing is deleted: the batch comes back after the queue's visibility
timeout and succeeds on a fresh connection, late and with a function error on record."""

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


async def query():
    async with pool.acquire() as conn:
        return await conn.fetchval("SELECT pg_backend_pid()")


def handler(event, context):
    backend_pid = loop.run_until_complete(query())  # the batch's database work
    for record in event["Records"]:
        with (PROCESSED / record["messageId"]).open("a") as out:
            out.write(f"{record['attributes']['ApproximateReceiveCount']} {backend_pid}\n")
    return {}

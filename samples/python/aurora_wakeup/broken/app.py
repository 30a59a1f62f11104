"""Connects per invocation with a short connect timeout: fine against a running database, a failure against an
Aurora Serverless cluster that is waking up (about 15 s before it accepts connections)."""

import asyncio
import os

import asyncpg

CONNECT_TIMEOUT_S = float(os.environ.get("CONNECT_TIMEOUT_S", "1"))


async def query():
    conn = await asyncpg.connect(
        host=os.environ["DB_HOST"],
        port=int(os.environ["DB_PORT"]),
        user=os.environ["DB_USER"],
        database=os.environ["DB_NAME"],
        timeout=CONNECT_TIMEOUT_S,
    )
    try:
        return await conn.fetchval("SELECT 1")
    finally:
        await conn.close()


def handler(event, context):
    return {"value": asyncio.run(query())}

"""Connects per invocation with a connect timeout longer than the cluster's wake-up, so the first call after
an auto-pause waits for the database instead of failing."""

import asyncio
import os

import asyncpg

# Longer than the wake-up (the psycopg/asyncpg `connect_timeout=120` fix); the function timeout must allow it.
CONNECT_TIMEOUT_S = float(os.environ.get("CONNECT_TIMEOUT_S", "120"))


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

"""The chaos soak's function: each invocation writes one row to PostgreSQL (asyncpg, through the fault proxy).

The row is the function's own record of what it ran: the soak counts the asynchronous events delivered from it.
A connection that failed in any way (the soak restarts the server) is dropped and the write tried once more on a
fresh one; a second failure is the invocation's error, which the caller sees (or the async retries handle).
"""

import asyncio
import os

import asyncpg

TABLE = os.environ["CHAOS_TABLE"]
INSERT = f"INSERT INTO {TABLE} (event_id, kind, request_id) VALUES ($1, $2, $3)"

loop = asyncio.new_event_loop()
asyncio.set_event_loop(loop)
connection = None


async def connect():
    return await asyncpg.connect(
        host=os.environ["DB_HOST"],
        port=int(os.environ["DB_PORT"]),
        user=os.environ.get("DB_USER", "postgres"),
        database=os.environ.get("DB_NAME", "test"),
        timeout=1.0,
        command_timeout=1.0,
    )


async def record(event_id, kind, request_id):
    global connection
    for attempt in (1, 2):
        try:
            if connection is None or connection.is_closed():
                connection = await connect()
            await connection.execute(INSERT, event_id, kind, request_id)
            return
        except Exception:  # closed by the server's restart, timed out, left mid-operation: never trusted again
            if connection is not None:
                connection.terminate()
            connection = None
            if attempt == 2:
                raise


class AskedToFail(Exception):
    pass


def handler(event, context):
    if event.get("fail"):  # a function error, before any row: retried, then recorded as failed when async
        raise AskedToFail(f"event {event['id']} asked to fail")
    loop.run_until_complete(record(event["id"], event["kind"], context.aws_request_id))
    return {"id": event["id"], "pid": os.getpid()}

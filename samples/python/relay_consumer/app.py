"""A queue consumer in the "relay" style: takes a batch from a PostgreSQL table queue (FOR UPDATE SKIP LOCKED),
processes it, and while rows remain, invokes itself asynchronously (InvocationType=Event) to take the next batch.
boto3 reaches the emulator through AWS_ENDPOINT_URL_LAMBDA, as it reaches Lambda on AWS."""

import asyncio
import json
import os

import asyncpg
import boto3

TABLE = os.environ.get("QUEUE_TABLE", "relay_queue")
BATCH = int(os.environ.get("BATCH_SIZE", "10"))
lambda_client = boto3.client("lambda")


async def take_batch(request_id):
    conn = await asyncpg.connect(
        host=os.environ["DB_HOST"],
        port=int(os.environ["DB_PORT"]),
        user=os.environ["DB_USER"],
        database=os.environ["DB_NAME"],
    )
    try:
        async with conn.transaction():
            rows = await conn.fetch(
                f"SELECT id FROM {TABLE} WHERE done_by IS NULL ORDER BY id LIMIT $1 FOR UPDATE SKIP LOCKED", BATCH
            )
            ids = [row["id"] for row in rows]
            await conn.execute(f"UPDATE {TABLE} SET done_by = $1 WHERE id = ANY($2)", request_id, ids)
        remaining = await conn.fetchval(f"SELECT count(*) FROM {TABLE} WHERE done_by IS NULL")
        return ids, remaining
    finally:
        await conn.close()


def handler(event, context):
    ids, remaining = asyncio.run(take_batch(context.aws_request_id))
    print(f"relay: processed {len(ids)}, {remaining} remaining")
    if remaining:
        response = lambda_client.invoke(
            FunctionName=context.function_name, InvocationType="Event", Payload=json.dumps({"relay": True})
        )
        print(f"relay: handed over to {response['ResponseMetadata']['RequestId']}")
    return {"processed": len(ids), "remaining": remaining}

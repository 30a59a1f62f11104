"""Seed 003's relay consumer without the clock: it drains the queue in one go and relies on the function timeout
never coming. With more files than one invocation can take, it is killed mid-batch (Task timed out): the messages
it had received come back after the queue's visibility timeout, and the files it had already processed from them
are processed again; the asynchronous retries of the timed-out invocation carry on the draining."""

import json
import os
import time
import uuid
from urllib.parse import unquote_plus

import boto3

sqs = boto3.client("sqs")
s3 = boto3.client("s3")
QUEUE = os.environ.get("QUEUE_NAME", "uploads")
RESULTS = os.environ.get("RESULTS_BUCKET", "results")
PROCESS_MS = int(os.environ.get("PROCESS_MS", "0"))  # the work on each file, which the seed leaves open
queue_url = None


def process(record):
    bucket, key = record["s3"]["bucket"]["name"], unquote_plus(record["s3"]["object"]["key"])
    size = len(s3.get_object(Bucket=bucket, Key=key)["Body"].read())
    time.sleep(PROCESS_MS / 1000)
    s3.put_object(Bucket=RESULTS, Key=f"{key}/{uuid.uuid4()}", Body=str(size).encode())


def handler(event, context):
    global queue_url
    queue_url = queue_url or sqs.get_queue_url(QueueName=QUEUE)["QueueUrl"]
    processed = 0
    while True:
        messages = sqs.receive_message(QueueUrl=queue_url, MaxNumberOfMessages=10, WaitTimeSeconds=1)
        if not messages.get("Messages"):
            break
        for message in messages["Messages"]:
            for record in json.loads(message["Body"]).get("Records", []):
                process(record)
                processed += 1
        # Deleted only once the whole batch is done: a timeout mid-batch leaves every message of it to come back.
        sqs.delete_message_batch(
            QueueUrl=queue_url,
            Entries=[{"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]} for i, m in enumerate(messages["Messages"])],
        )
    return {"processed": processed}

"""Seed 003's relay consumer: files put into S3 are announced in SQS by S3 event notifications; a schedule starts
this consumer, which processes what it can within its time (stopping SAFETY_MS before its deadline) and, while
messages remain, invokes itself asynchronously to hand the baton on. Each message is deleted right after its
files are processed, so a message is processed again only when SQS delivers it twice (at-least-once)."""

import json
import os
import time
import uuid
from urllib.parse import unquote_plus

import boto3

sqs = boto3.client("sqs")  # AWS_ENDPOINT_URL: the emulator's SQS/S3 endpoint; the Lambda client reaches lambda-freeze
s3 = boto3.client("s3")
lambda_client = boto3.client("lambda")
QUEUE = os.environ.get("QUEUE_NAME", "uploads")
RESULTS = os.environ.get("RESULTS_BUCKET", "results")
PROCESS_MS = int(os.environ.get("PROCESS_MS", "0"))  # the work on each file, which the seed leaves open
SAFETY_MS = int(os.environ.get("SAFETY_MS", "1500"))
queue_url = None


def process(record):
    bucket, key = record["s3"]["bucket"]["name"], unquote_plus(record["s3"]["object"]["key"])
    size = len(s3.get_object(Bucket=bucket, Key=key)["Body"].read())
    time.sleep(PROCESS_MS / 1000)
    # One result object per processing (an asynchronous retry keeps its request id, so a uuid names it): a file
    # processed twice leaves two, so duplicates can be counted.
    s3.put_object(Bucket=RESULTS, Key=f"{key}/{uuid.uuid4()}", Body=str(size).encode())


def handler(event, context):
    global queue_url
    queue_url = queue_url or sqs.get_queue_url(QueueName=QUEUE)["QueueUrl"]
    processed, drained = 0, False
    while context.get_remaining_time_in_millis() > SAFETY_MS:
        messages = sqs.receive_message(QueueUrl=queue_url, MaxNumberOfMessages=10, WaitTimeSeconds=1)
        if not messages.get("Messages"):
            drained = True
            break
        for message in messages["Messages"]:
            for record in json.loads(message["Body"]).get("Records", []):  # S3's s3:TestEvent has none
                process(record)
                processed += 1
            sqs.delete_message(QueueUrl=queue_url, ReceiptHandle=message["ReceiptHandle"])
    if not drained:
        lambda_client.invoke(FunctionName=context.function_name, InvocationType="Event", Payload=b'{"relay": true}')
    print(f"relay: processed {processed}, {'drained' if drained else 'handed over'}")
    return {"processed": processed, "relayed": not drained}

"""The SQS samples, each broken and fixed, against the embedded moto server: the visibility timeout equal to the
function timeout under throttling (messages processed twice), seed 003's relay consumer, and a consumer holding a
database pool across long gaps."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import time
from pathlib import Path

import pytest
from sqs_support import moto_installed

from conftest import require
from emulator.config.events import EventsConfig, QueueConfig, SqsMappingConfig
from emulator.config.settings import ServerConfig
from emulator.testing import CollectingSink, EmulatorThread

pytestmark = pytest.mark.timeout(120)

SAMPLES = Path(__file__).resolve().parent.parent / "samples" / "python"


def processed_times(directory: Path) -> dict[int, int]:
    return {int(p.name): len(p.read_text().split()) for p in directory.iterdir()}


@pytest.mark.parametrize("variant", ["broken", "fixed"])
def test_visibility_timeout_equal_to_the_function_timeout(variant, tmp_path):
    require(moto_installed(), "moto[server] (pip install 'lambda-freeze[aws]') for the embedded SQS endpoint")
    config = ServerConfig.load(file=SAMPLES / "sqs_visibility" / f"{variant}.toml", cli={"port": 0}, environ={})
    function = dataclasses.replace(config.functions[0], env={"PROCESSED_DIR": str(tmp_path)})
    config = config.replace(functions=(function,))
    with EmulatorThread(config, sink=CollectingSink()) as emu:
        assert emu.emulator is not None and emu.emulator.events.mappings is not None
        (mapping,) = emu.emulator.events.mappings.mappings.values()
        sqs = emu.emulator.events.endpoint.client("sqs")  # type: ignore[union-attr]
        for n in range(6):
            sqs.send_message(QueueUrl=mapping.queue.url, MessageBody=json.dumps({"id": n}))
        if variant == "broken":
            # A message that waited for the one environment is visible again before its invocation ends.
            emu.wait_for(lambda e: any(times > 1 for times in processed_times(tmp_path).values()), timeout_s=60)
            emu.wait_for(lambda e: len(processed_times(tmp_path)) == 6, timeout_s=60)  # duplicated, none lost
            assert mapping.counts["throttled"] > 0
        else:
            emu.wait_for(lambda e: mapping.counts["deleted"] == 6, timeout_s=60)
            assert processed_times(tmp_path) == dict.fromkeys(range(6), 1)
            assert mapping.counts["throttled"] > 0  # throttled as well, but within the visibility timeout
            attributes = sqs.get_queue_attributes(
                QueueUrl=mapping.queue.url,
                AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"],
            )["Attributes"]
            assert attributes == {"ApproximateNumberOfMessages": "0", "ApproximateNumberOfMessagesNotVisible": "0"}


def chain_idle(emulator, name: str) -> bool:
    """The relay has ended: nothing queued, retrying or running, and at least one invocation delivered or failed."""
    status = emulator.async_status()["functions"][name]
    busy = status["queued"] or status["retrying"] or status["in_flight"]
    return not busy and status["delivered"] + status["failed"] >= 1


@pytest.mark.timeout(240)
@pytest.mark.parametrize("variant", ["broken", "fixed"])
def test_seed_003_relay_consumer_processes_every_file(variant):
    """200 files put into S3 → S3 notifications → SQS → the scheduled relay consumer: every file processed, none
    lost, duplicates counted and reported. The broken consumer runs into its timeout (files of the batch it was
    killed in come back, and are processed again when some of them were done); the fixed one hands over in time,
    without a timeout and within one firing of the schedule."""
    require(moto_installed(), "moto[server] (pip install 'lambda-freeze[aws]') for the embedded SQS/S3 endpoint")
    directory = SAMPLES / "s3_relay_consumer"
    config = ServerConfig.load(file=directory / "functions.toml", cli={"port": 0}, environ={})
    function = dataclasses.replace(config.functions[0], code_dir=directory / variant, retry_delays_s=(0.5, 1.0))
    config = config.replace(functions=(function,))
    sink = CollectingSink()
    with EmulatorThread(config, sink=sink) as emu:
        assert emu.emulator is not None and emu.emulator.events.endpoint is not None
        s3 = emu.emulator.events.endpoint.client("s3")
        for n in range(200):
            s3.put_object(Bucket="files", Key=f"in/file-{n:03}.txt", Body=b"x" * n)
        sqs = emu.emulator.events.endpoint.client("sqs")
        url = sqs.get_queue_url(QueueName="uploads")["QueueUrl"]
        for _firing in range(60):  # the schedule fires again while messages remain, as it would every 5 minutes
            emu.emulator.events.trigger("relay.Every5Minutes")
            emu.wait_for(lambda e: chain_idle(e, "relay"), timeout_s=200)
            left = sqs.get_queue_attributes(
                QueueUrl=url,
                AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"],
            )["Attributes"]
            if left == {"ApproximateNumberOfMessages": "0", "ApproximateNumberOfMessagesNotVisible": "0"}:
                break
            if left["ApproximateNumberOfMessages"] == "0":
                time.sleep(0.5)  # wait-ok: messages a timed-out invocation received are invisible until then
        results = [
            obj["Key"]
            for page in s3.get_paginator("list_objects_v2").paginate(Bucket="results")
            for obj in page.get("Contents", [])
        ]
        status = emu.emulator.async_status()["functions"]["relay"]
    files = [key.rsplit("/", 1)[0] for key in results]
    assert set(files) == {f"in/file-{n:03}.txt" for n in range(200)}  # none lost
    duplicates = len(files) - len(set(files))
    timeouts = [line for line in sink.lines("relay") if "Task timed out after 3.00 seconds" in line]
    print(f"{variant}: {len(files)} results for 200 files, {duplicates} duplicates, {len(timeouts)} timeouts, {status}")
    if variant == "broken":
        assert timeouts, "the broken consumer was expected to run into its timeout"
    else:
        assert not timeouts
        assert _firing == 0  # one firing drained it all
        assert status["delivered"] >= 2  # the baton was handed on at least once
        assert status["failed"] == 0


@pytest.mark.parametrize("variant", ["broken", "fixed"])
def test_sqs_consumer_holding_a_database_pool(variant, lambda_freeze_postgres, serve, tmp_path):
    """A batch after a gap longer than the server's idle session timeout: the broken consumer fails it and gets
    it again after the visibility timeout (receive 2, a new session); the fixed one processes it on receive 1.
    (``lambda_freeze_postgres`` comes first: the function stops before its role is dropped.)"""
    require(moto_installed(), "moto[server] (pip install 'lambda-freeze[aws]') for the embedded SQS endpoint")
    db = lambda_freeze_postgres(idle_session_timeout_s=0.5)
    events = EventsConfig(
        queues=(QueueConfig("batches", visibility_timeout_s=2),),
        sqs_mappings=(SqsMappingConfig(function="fn", queue="batches"),),
    )
    fn = serve(
        str(SAMPLES / "sqs_db_consumer" / variant),
        env={**db.env(), "PROCESSED_DIR": str(tmp_path)},
        timeout_s=2,
        server={"events": events},
    )
    emulator = fn.emulator.emulator
    (mapping,) = emulator.events.mappings.mappings.values()
    sqs = emulator.events.endpoint.client("sqs")
    sqs.send_message(QueueUrl=mapping.queue.url, MessageBody="first")
    fn.wait_for(lambda emu: mapping.counts["deleted"] == 1)
    fn.wait_envs(lambda envs: [env["state"] for env in envs] == ["frozen"])
    time.sleep(1.5)  # wait-ok: the gap between batches, frozen, while the server closes the idle session
    second = sqs.send_message(QueueUrl=mapping.queue.url, MessageBody="second")["MessageId"]
    fn.wait_for(lambda emu: mapping.counts["deleted"] == 2, timeout_s=30)
    ((receive_count, _backend_pid),) = [line.split() for line in (tmp_path / second).read_text().splitlines()]
    errors = [line for line in fn.lines if "ConnectionDoesNotExistError" in line]
    if variant == "broken":
        assert receive_count == "2"  # failed on the first delivery, back after the visibility timeout
        assert mapping.counts["failed_batches"] == 1
        assert errors
    else:
        assert receive_count == "1"
        assert mapping.counts["failed_batches"] == 0


NODE_CONSUMER = SAMPLES.parent / "node" / "sqs_consumer"


def test_node_consumer_with_the_aws_sdk_for_javascript_v3(serve):
    """A Node.js consumer under the real aws-lambda-ric forwards good messages with @aws-sdk/client-sqs (through
    AWS_ENDPOINT_URL) and names the bad one in batchItemFailures: it alone is retried, then dead-lettered."""
    require(moto_installed(), "moto[server] (pip install 'lambda-freeze[aws]') for the embedded SQS endpoint")
    stamp = NODE_CONSUMER / "node_modules" / ".lambda-freeze-lock.sha256"
    lock = NODE_CONSUMER / "package-lock.json"
    require(
        stamp.is_file() and stamp.read_text().strip() == hashlib.sha256(lock.read_bytes()).hexdigest(),
        "the Node.js SQS sample's node_modules is not installed from its lock: run `samples/node/install.sh`",
    )
    events = EventsConfig(
        queues=(
            QueueConfig("node-dlq"),
            QueueConfig("node-in", visibility_timeout_s=3, dead_letter_queue="node-dlq", max_receive_count=2),
            QueueConfig("node-out"),
        ),
        sqs_mappings=(SqsMappingConfig(function="fn", queue="node-in", report_batch_item_failures=True),),
    )
    fn = serve(
        str(NODE_CONSUMER),
        handler="index.handler",
        runtime="nodejs20.x",
        timeout_s=3,
        env={"OUT_QUEUE": "node-out"},
        server={"events": events},
    )
    emulator = fn.emulator.emulator
    sqs = emulator.events.endpoint.client("sqs")
    out_url = sqs.get_queue_url(QueueName="node-out")["QueueUrl"]
    (mapping,) = emulator.events.mappings.mappings.values()
    for n in range(5):
        sqs.send_message(QueueUrl=mapping.queue.url, MessageBody=json.dumps({"id": n, "bad": n == 1}))
    fn.wait_for(lambda emu: mapping.counts["deleted"] == 4, timeout_s=60)
    forwarded = []
    while len(forwarded) < 4:
        messages = sqs.receive_message(QueueUrl=out_url, MaxNumberOfMessages=10, WaitTimeSeconds=5).get("Messages", [])
        assert messages, f"only {forwarded} were forwarded"
        forwarded += [json.loads(m["Body"])["id"] for m in messages]
    assert sorted(forwarded) == [0, 2, 3, 4]
    assert any("failed: message 1" in line for line in fn.lines)

"""SQS event source mappings against the embedded moto server, with a real Python runtime: the event's shape,
delete on success, a failed batch back after the visibility timeout, batchItemFailures, the redrive policy,
batching windows, and the checks Lambda makes when a mapping is created."""

from __future__ import annotations

import hashlib
import json
import socket
import time
import urllib.request

import pytest
from sqs_support import depth, mapping, queue_url, recorded, send, serve_with_queues, sqs

from emulator.config.events import EventsConfig, QueueConfig, SqsMappingConfig
from emulator.config.settings import FunctionConfig
from emulator.errors import ConfigError, FunctionNotFound

pytestmark = pytest.mark.timeout(90)


@pytest.fixture
def sqs_serve(serve, tmp_path):
    return serve_with_queues(serve, tmp_path)


def test_the_event_has_lambdas_shape_and_the_message_is_deleted(sqs_serve, tmp_path):
    fn = sqs_serve(queues=[QueueConfig("orders")], mappings=[SqsMappingConfig(function="fn", queue="orders")])
    sent = sqs(fn).send_message(
        QueueUrl=queue_url(fn, "orders"),
        MessageBody='{"order": 7}',
        MessageAttributes={"tenant": {"DataType": "String", "StringValue": "acme"}},
    )
    fn.wait_for(lambda emu: mapping(fn).counts["deleted"] == 1)
    ((record,),) = [event["Records"] for event in recorded(tmp_path / "events")]
    assert record["messageId"] == sent["MessageId"]
    assert record["body"] == '{"order": 7}'
    assert record["md5OfBody"] == hashlib.md5(b'{"order": 7}').hexdigest()
    assert record["eventSource"] == "aws:sqs"
    assert record["eventSourceARN"] == mapping(fn).queue.arn
    assert record["eventSourceARN"].startswith("arn:aws:sqs:us-east-1:") and record["eventSourceARN"].endswith(
        ":orders"
    )
    assert record["awsRegion"] == "us-east-1"
    assert record["receiptHandle"]
    assert record["attributes"]["ApproximateReceiveCount"] == "1"
    assert {"SentTimestamp", "SenderId", "ApproximateFirstReceiveTimestamp"} <= set(record["attributes"])
    assert record["messageAttributes"] == {
        "tenant": {"stringValue": "acme", "stringListValues": [], "binaryListValues": [], "dataType": "String"}
    }
    assert depth(fn, "orders") == 0
    assert mapping(fn).describe()["LastProcessingResult"] == "OK"


def test_queue_arns_are_in_the_served_functions_account(sqs_serve, tmp_path):
    """The embedded endpoint's queues live in the account of the served functions (their ARNs, a template's
    !GetAtt Queue.Arn), not moto's default one: a dead-letter queue named by such an ARN is found, and
    eventSourceARN, the mapping's EventSourceArn and the queue URL carry that account."""
    account = FunctionConfig(name="fn", code_dir=tmp_path, handler="app.handler").account_id
    fn = sqs_serve(
        queues=[
            QueueConfig("held"),
            QueueConfig(
                "orders", dead_letter_queue=f"arn:aws:sqs:us-east-1:{account}:held", max_receive_count=3
            ),
        ],
        mappings=[SqsMappingConfig(function="fn", queue=f"arn:aws:sqs:us-east-1:{account}:orders")],
    )
    assert fn.emulator.emulator.functions["fn"].config.arn == f"arn:aws:lambda:us-east-1:{account}:function:fn"
    arn = f"arn:aws:sqs:us-east-1:{account}:orders"
    assert mapping(fn).queue.arn == arn
    assert queue_url(fn, "orders").endswith(f"/{account}/orders")
    redrive = sqs(fn).get_queue_attributes(QueueUrl=queue_url(fn, "orders"), AttributeNames=["RedrivePolicy"])
    assert json.loads(redrive["Attributes"]["RedrivePolicy"])["deadLetterTargetArn"].endswith(f":{account}:held")
    (listed,) = fn.client.list_event_source_mappings(EventSourceArn=arn)["EventSourceMappings"]
    assert listed["EventSourceArn"] == arn
    send(fn, "orders", [{"n": 1}])
    fn.wait_for(lambda emu: mapping(fn).counts["deleted"] == 1)
    ((record,),) = [event["Records"] for event in recorded(tmp_path / "events")]
    assert record["eventSourceARN"] == arn


def test_a_failed_batch_is_not_deleted_and_comes_back_after_the_visibility_timeout(sqs_serve, tmp_path):
    fn = sqs_serve(
        queues=[QueueConfig("jobs", visibility_timeout_s=2)],
        mappings=[SqsMappingConfig(function="fn", queue="jobs")],
        timeout_s=2,
    )
    send(fn, "jobs", [{"fail_until_receive": 2}])
    fn.wait_for(lambda emu: mapping(fn).counts["deleted"] == 1, timeout_s=30)
    first, second = recorded(tmp_path / "events")
    assert first["Records"][0]["messageId"] == second["Records"][0]["messageId"]
    assert first["Records"][0]["attributes"]["ApproximateReceiveCount"] == "1"
    assert second["Records"][0]["attributes"]["ApproximateReceiveCount"] == "2"
    assert mapping(fn).counts["failed_batches"] == 1
    assert depth(fn, "jobs") == 0


def test_a_batching_window_gathers_a_batch(sqs_serve, tmp_path):
    fn = sqs_serve(
        queues=[QueueConfig("bulk")],
        mappings=[
            SqsMappingConfig(function="fn", queue="bulk", batch_size=25, max_batching_window_s=2, max_concurrency=2)
        ],
    )
    mapping(fn).set_enabled(False)  # the messages are all there before the pollers look
    send(fn, "bulk", [{"n": n} for n in range(25)])
    mapping(fn).set_enabled(True)
    fn.wait_for(lambda emu: mapping(fn).counts["deleted"] == 25, timeout_s=30)
    sizes = [len(event["Records"]) for event in recorded(tmp_path / "events")]
    assert sum(sizes) == 25
    assert max(sizes) > 10  # two pollers share 25 messages: one event carries more than one ReceiveMessage's worth


PARTIAL = "../../samples/python/sqs_partial_batch"


@pytest.mark.parametrize(("variant", "reported"), [("broken", False), ("fixed", True)])
def test_partial_batch_failure(sqs_serve, tmp_path, variant, reported):
    """One poison message in a batch of ten: without ReportBatchItemFailures, its nine good companions are
    processed again on every receive (or never) and follow it into the dead-letter queue; with it, they are processed
    once."""
    processed = tmp_path / "processed"
    processed.mkdir()
    fn = sqs_serve(
        code=f"{PARTIAL}/{variant}",
        env={"PROCESSED_DIR": str(processed)},
        queues=[
            QueueConfig("dlq"),
            QueueConfig("in", visibility_timeout_s=1, dead_letter_queue="dlq", max_receive_count=2),
        ],
        mappings=[],
        timeout_s=1,
    )
    send(fn, "in", [{"id": n, "bad": n == 3} for n in range(10)])
    create = {
        "FunctionName": "fn",
        "EventSourceArn": sqs(fn).get_queue_attributes(QueueUrl=queue_url(fn, "in"), AttributeNames=["QueueArn"])[
            "Attributes"
        ]["QueueArn"],
        "BatchSize": 10,
        "ScalingConfig": {"MaximumConcurrency": 2},
        "FunctionResponseTypes": ["ReportBatchItemFailures"] if reported else [],
    }
    fn.emulator.call(lambda emu: emu.events.create_mapping(create))  # the ten wait in the queue: one batch
    deadline = time.monotonic() + 40
    # Done when the queue is empty and the poison message is in the dead-letter queue
    while depth(fn, "in") > 0 or depth(fn, "dlq") < 1:  # moto moves them on a receive: nothing to await
        assert time.monotonic() < deadline, (
            depth(fn, "dlq"),
            depth(fn, "in"),
            sorted(p.name for p in processed.iterdir()),
            mapping(fn).describe(),
        )
        time.sleep(0.2)  # wait-ok: the redrive happens inside the SQS server, which sends no event
    times = {int(p.name): len(p.read_text().split()) for p in processed.iterdir()}
    dead = _bodies(fn, "dlq")
    if reported:
        assert dead == [3]  # only the poison message
        assert times == {n: 1 for n in range(10) if n != 3}  # each good message once
    else:
        # The handler stops at the poison message, and the whole batch fails: its good companions are processed on
        # each receive (those before it) or never (those after it), and follow it into the dead-letter queue. How
        # the ten are cut into batches is the pollers' and the SQS server's doing; a batch without the poison
        # message succeeds once.
        assert 3 in dead and len(dead) > 1, (dead, times)
        assert all(times.get(n, 0) in (0, 2) for n in dead if n != 3), (dead, times)
        assert all(times.get(n) == 1 for n in range(10) if n not in dead), (dead, times)


def _bodies(fn, queue):
    """The ids of the messages in a queue, read off it."""
    ids: list[int] = []
    while True:
        received = sqs(fn).receive_message(
            QueueUrl=queue_url(fn, queue), MaxNumberOfMessages=10, VisibilityTimeout=60
        ).get("Messages", [])
        if not received:
            return sorted(ids)
        ids.extend(json.loads(message["Body"])["id"] for message in received)


def test_a_visibility_timeout_shorter_than_the_function_timeout_is_refused(sqs_serve):
    with pytest.raises(ConfigError, match="Queue visibility timeout: 2 seconds is less than Function timeout: 5"):
        sqs_serve(
            queues=[QueueConfig("short", visibility_timeout_s=2)],
            mappings=[SqsMappingConfig(function="fn", queue="short")],
            timeout_s=5,
        )


def test_an_unknown_queue_is_named(sqs_serve):
    with pytest.raises(ConfigError, match="queue arn:aws:sqs:us-east-1:123456789012:nope does not exist"):
        sqs_serve(
            queues=[QueueConfig("other")],
            mappings=[SqsMappingConfig(function="fn", queue="arn:aws:sqs:us-east-1:123456789012:nope")],
        )


def test_a_mapping_to_a_function_that_does_not_exist(sqs_serve):
    with pytest.raises(FunctionNotFound, match="Function not found: ghost"):
        sqs_serve(queues=[QueueConfig("q")], mappings=[SqsMappingConfig(function="ghost", queue="q")])


def test_the_control_plane_api_through_boto3(sqs_serve, tmp_path):
    """CreateEventSourceMapping, List, Get, Update (Enabled, BatchSize), Delete, as boto3's Lambda client calls
    them on the Invoke API's port; the inspection API lists the mapping and its counts."""
    fn = sqs_serve(queues=[QueueConfig("api")], mappings=[])
    arn = sqs(fn).get_queue_attributes(QueueUrl=queue_url(fn, "api"), AttributeNames=["QueueArn"])["Attributes"][
        "QueueArn"
    ]
    created = fn.client.create_event_source_mapping(
        EventSourceArn=arn, FunctionName="fn", BatchSize=5, FunctionResponseTypes=["ReportBatchItemFailures"]
    )
    uuid = created["UUID"]
    assert created["State"] == "Enabled" and created["BatchSize"] == 5
    assert created["FunctionArn"].endswith(":function:fn") and created["EventSourceArn"] == arn
    assert created["FunctionResponseTypes"] == ["ReportBatchItemFailures"]
    (listed,) = fn.client.list_event_source_mappings(FunctionName="fn")["EventSourceMappings"]
    assert listed["UUID"] == uuid
    assert fn.client.list_event_source_mappings(EventSourceArn=arn + "-other")["EventSourceMappings"] == []
    send(fn, "api", [{"n": 1}])
    fn.wait_for(lambda emu: mapping(fn).counts["deleted"] == 1)
    assert fn.client.update_event_source_mapping(UUID=uuid, Enabled=False)["State"] == "Disabled"
    assert fn.client.get_event_source_mapping(UUID=uuid)["State"] == "Disabled"
    updated = fn.client.update_event_source_mapping(UUID=uuid, BatchSize=7)
    assert updated["BatchSize"] == 7 and updated["State"] == "Disabled" and updated["UUID"] == uuid
    assert fn.client.update_event_source_mapping(UUID=uuid, Enabled=True)["State"] == "Enabled"
    with urllib.request.urlopen(fn.emulator.url + "/_lambda-freeze/event-source-mappings") as response:
        (inspected,) = json.loads(response.read())
    assert inspected["UUID"] == uuid and inspected["BatchSize"] == 7 and "Counts" in inspected
    assert fn.client.delete_event_source_mapping(UUID=uuid)["State"] == "Deleting"
    with pytest.raises(fn.client.exceptions.ResourceNotFoundException):
        fn.client.get_event_source_mapping(UUID=uuid)
    with pytest.raises(fn.client.exceptions.ResourceNotFoundException, match="Function not found: ghost"):
        fn.client.create_event_source_mapping(EventSourceArn=arn, FunctionName="ghost")
    with pytest.raises(fn.client.exceptions.InvalidParameterValueException, match="does not exist"):
        fn.client.create_event_source_mapping(EventSourceArn=arn + "-missing", FunctionName="fn")
    with pytest.raises(fn.client.exceptions.InvalidParameterValueException, match="BatchSize above 10 needs"):
        fn.client.create_event_source_mapping(EventSourceArn=arn, FunctionName="fn", BatchSize=20)


def test_an_unreachable_endpoint_is_named_at_start(serve, tmp_path):
    with socket.socket() as probe:  # a port nothing listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    events = EventsConfig(queues=(QueueConfig("q"),))
    with pytest.raises(ConfigError, match=f"queue q: cannot be created on http://127.0.0.1:{port}"):
        serve("python/basic", server={"events": events, "aws_endpoint": f"http://127.0.0.1:{port}"})


def test_an_endpoint_that_goes_away_is_retried_with_backoff_not_in_a_hot_loop(sqs_serve, tmp_path):
    fn = sqs_serve(queues=[QueueConfig("gone")], mappings=[SqsMappingConfig(function="fn", queue="gone")])
    endpoint = fn.emulator.emulator.events.endpoint
    endpoint._process.kill()  # the SQS server dies under the poller
    fn.wait_for(lambda emu: mapping(fn).counts["receive_errors"] >= 1, timeout_s=60)
    time.sleep(4)  # wait-ok: the outage itself; the poller must not spin through it
    errors = mapping(fn).counts["receive_errors"]
    assert 1 <= errors <= 4  # backoff 1 s, 2 s, 4 s: a handful of attempts, not thousands
    assert endpoint.url in mapping(fn).describe()["LastProcessingResult"]


def test_fifo_order_is_kept_per_message_group(sqs_serve, tmp_path):
    fn = sqs_serve(
        queues=[QueueConfig("jobs.fifo", fifo=True, content_based_deduplication=True)],
        mappings=[SqsMappingConfig(function="fn", queue="jobs.fifo", batch_size=3)],
    )
    url = queue_url(fn, "jobs.fifo")
    for n in range(12):
        group = "ab"[n % 2]
        sqs(fn).send_message(QueueUrl=url, MessageBody=json.dumps({"group": group, "n": n}), MessageGroupId=group)
    fn.wait_for(lambda emu: mapping(fn).counts["deleted"] == 12, timeout_s=60)
    seen: dict[str, list[int]] = {"a": [], "b": []}
    for event in recorded(tmp_path / "events"):
        for record in event["Records"]:
            body = json.loads(record["body"])
            seen[body["group"]].append(body["n"])
            assert record["attributes"]["MessageGroupId"] == body["group"]
    assert seen == {"a": list(range(0, 12, 2)), "b": list(range(1, 12, 2))}


def test_maximum_concurrency_caps_the_environments_a_mapping_uses(sqs_serve, tmp_path):
    fn = sqs_serve(
        queues=[QueueConfig("busy")],
        mappings=[SqsMappingConfig(function="fn", queue="busy", batch_size=1, max_concurrency=2)],
    )
    send(fn, "busy", [{"sleep_s": 0.3} for _ in range(8)])
    fn.wait_for(lambda emu: mapping(fn).counts["deleted"] == 8, timeout_s=60)
    assert 1 <= len(fn.environments()) <= 2  # at most two batches in flight: at most two environments
    assert mapping(fn).counts["throttled"] == 0  # the cap is the mapping's own, not the function's

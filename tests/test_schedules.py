"""Schedules: listed with their next time, fired now by the inspection API and by `lambda-freeze trigger`, delivered
as asynchronous invocations carrying EventBridge's Scheduled Event (or the schedule's Input); Enabled false
honoured; a bad expression stops the start with the part quoted. Also read from a TOML file."""

from __future__ import annotations

import json
import subprocess
import sys
import urllib.request
from datetime import UTC, datetime
from pathlib import Path

import pytest

from emulator.config.events import EventsConfig, ScheduleConfig
from emulator.config.settings import ServerConfig
from emulator.errors import ConfigError
from emulator.sources.schedule.expressions import ExpressionError

pytestmark = pytest.mark.timeout(60)


def served_with(serve, tmp_path, *schedules: ScheduleConfig):
    (tmp_path / "events").mkdir()
    return serve(
        "python/sqs_recorder",
        env={"RECORD_DIR": str(tmp_path / "events")},
        server={"events": EventsConfig(schedules=schedules)},
    )


def delivered(fn) -> int:
    return int(fn.emulator.emulator.async_status()["functions"][fn.name]["delivered"])


def http(url: str, method: str = "GET") -> object:
    with urllib.request.urlopen(
        urllib.request.Request(url, data=b"" if method == "POST" else None, method=method)
    ) as r:
        return json.loads(r.read())


def test_listed_and_fired_now_with_the_scheduled_event(serve, tmp_path):
    fn = served_with(serve, tmp_path, ScheduleConfig(name="fn.Nightly", function="fn", expression="cron(0 3 * * ? *)"))
    (listed,) = http(fn.emulator.url + "/_lambda-freeze/schedules")  # type: ignore[misc]
    assert listed["name"] == "fn.Nightly" and listed["type"] == "Schedule" and listed["enabled"] is True
    next_at = datetime.fromisoformat(listed["next"])
    assert (next_at.hour, next_at.minute) == (3, 0) and next_at > datetime.now(UTC)
    answer = http(fn.emulator.url + "/_lambda-freeze/schedules/fn.Nightly/trigger", "POST")
    fn.wait_for(lambda emu: delivered(fn) == 1)
    (event,) = [json.loads(p.read_text()) for p in (tmp_path / "events").iterdir()]
    assert event["detail-type"] == "Scheduled Event"
    assert event["source"] == "aws.events"
    assert event["resources"] == ["arn:aws:events:us-east-1:000000000000:rule/fn-Nightly"]
    assert event["detail"] == {} and event["version"] == "0" and event["region"] == "us-east-1"
    assert datetime.strptime(event["time"], "%Y-%m-%dT%H:%M:%SZ")
    assert f"START RequestId: {answer['RequestId']} Version: $LATEST" in fn.lines  # type: ignore[index]


def test_the_cli_fires_one_and_a_disabled_one_has_no_next_time(serve, tmp_path):
    fn = served_with(
        serve,
        tmp_path,
        ScheduleConfig(
            name="fn.Hourly",
            function="fn",
            expression="rate(1 hour)",
            enabled=False,
            scheduler=True,
            input='{"from": "input"}',
        ),
    )
    (listed,) = http(fn.emulator.url + "/_lambda-freeze/schedules")  # type: ignore[misc]
    assert listed["enabled"] is False and listed["next"] is None and listed["type"] == "ScheduleV2"
    done = subprocess.run(
        [sys.executable, "-m", "emulator.cli", "trigger", "fn.Hourly", "--endpoint-url", fn.emulator.url],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("fn.Hourly: fired, asynchronous invocation ")
    fn.wait_for(lambda emu: delivered(fn) == 1)
    (event,) = [json.loads(p.read_text()) for p in (tmp_path / "events").iterdir()]
    assert event == {"from": "input"}
    missing = subprocess.run(
        [sys.executable, "-m", "emulator.cli", "trigger", "fn.Nope", "--endpoint-url", fn.emulator.url],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert missing.returncode == 1
    assert "404 ResourceNotFoundException" in missing.stderr and "fn.Hourly" in missing.stderr


def test_a_bad_expression_stops_the_start(serve, tmp_path):
    with pytest.raises(ExpressionError, match="'61' is out of range for minutes"):
        served_with(serve, tmp_path, ScheduleConfig(name="fn.Bad", function="fn", expression="cron(61 * * * ? *)"))


def test_read_from_toml(tmp_path: Path):
    file = tmp_path / "functions.toml"
    code = Path(__file__).parent / "functions" / "python" / "basic"
    file.write_text(
        f"""
[server]
aws_endpoint = "http://127.0.0.1:4566"

[queues.dlq]
[queues.orders]
visibility_timeout = 60
dead_letter_queue = "dlq"
max_receive_count = 3

[functions.consumer]
code_dir = "{code}"
handler = "app.handler"

[[functions.consumer.sqs]]
queue = "orders"
batch_size = 5
report_batch_item_failures = true
maximum_concurrency = 2

[[functions.consumer.schedules]]
name = "Nightly"
expression = "cron(0 3 * * ? *)"
"""
    )
    config = ServerConfig.load(file=file, environ={})
    assert config.aws_endpoint == "http://127.0.0.1:4566"
    assert [q.name for q in config.events.queues] == ["dlq", "orders"]
    assert config.events.queues[1].max_receive_count == 3 and config.events.queues[1].visibility_timeout_s == 60
    (mapping,) = config.events.sqs_mappings
    assert (mapping.function, mapping.queue, mapping.batch_size, mapping.pollers) == ("consumer", "orders", 5, 2)
    assert mapping.report_batch_item_failures
    (schedule,) = config.events.schedules
    assert (schedule.name, schedule.expression) == ("consumer.Nightly", "cron(0 3 * * ? *)")
    file.write_text(file.read_text().replace("batch_size = 5", "batch_size = 50"))
    with pytest.raises(ConfigError, match="BatchSize above 10 needs MaximumBatchingWindowInSeconds"):
        ServerConfig.load(file=file, environ={})

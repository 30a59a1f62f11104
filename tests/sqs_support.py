"""Helpers for the tests of SQS event source mappings: functions served with queues on the embedded endpoint."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

from conftest import Served, require
from emulator.config.events import EventsConfig, QueueConfig, SqsMappingConfig
from emulator.sources.sqs.mapping import SqsMapping


def serve_with_queues(serve: Callable[..., Served], tmp_path: Path) -> Callable[..., Served]:
    """``factory(queues=[...], mappings=[...])``: the recorder function (or ``code``) with its queues and
    mappings; the function's events land in ``tmp_path / "events"``."""
    require(moto_installed(), "moto[server] (pip install 'lambda-freeze[aws]') for the embedded SQS endpoint")
    (tmp_path / "events").mkdir()

    def factory(
        *,
        queues: list[QueueConfig],
        mappings: list[SqsMappingConfig],
        code: str = "python/sqs_recorder",
        env: dict[str, str] | None = None,
        **settings: Any,
    ) -> Served:
        events = EventsConfig(queues=tuple(queues), sqs_mappings=tuple(mappings))
        return serve(
            code, env={"RECORD_DIR": str(tmp_path / "events"), **(env or {})}, server={"events": events}, **settings
        )

    return factory


def moto_installed() -> bool:
    try:
        import moto  # noqa: F401
    except ImportError:
        return False
    return True


def sqs(fn: Served) -> Any:
    endpoint = fn.emulator.emulator.events.endpoint  # type: ignore[union-attr]
    assert endpoint is not None
    return endpoint.client("sqs")


def queue_url(fn: Served, name: str) -> str:
    return str(sqs(fn).get_queue_url(QueueName=name)["QueueUrl"])


def mapping(fn: Served) -> SqsMapping:
    mappings = fn.emulator.emulator.events.mappings  # type: ignore[union-attr]
    assert mappings is not None
    (only,) = mappings.mappings.values()
    return only


def depth(fn: Served, name: str) -> int:
    """Messages in the queue, visible or in flight."""
    attributes = sqs(fn).get_queue_attributes(
        QueueUrl=queue_url(fn, name),
        AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"],
    )["Attributes"]
    return int(attributes["ApproximateNumberOfMessages"]) + int(attributes["ApproximateNumberOfMessagesNotVisible"])


def recorded(directory: Path) -> list[dict[str, Any]]:
    """The events the recorder function got, in the order it got them."""
    return [json.loads(path.read_text()) for path in sorted(directory.iterdir())]


def send(fn: Served, queue: str, bodies: list[Any], **extra: Any) -> list[str]:
    """Send the bodies (JSON-encoded unless str) in batches of ten; their message ids."""
    url = queue_url(fn, queue)
    ids: list[str] = []
    for start in range(0, len(bodies), 10):
        entries = [
            {"Id": str(i), "MessageBody": body if isinstance(body, str) else json.dumps(body), **extra}
            for i, body in enumerate(bodies[start : start + 10])
        ]
        response = sqs(fn).send_message_batch(QueueUrl=url, Entries=entries)
        assert not response.get("Failed"), response
        ids.extend(entry["MessageId"] for entry in response["Successful"])
    return ids

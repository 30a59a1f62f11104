"""Checking a scenario's SQS parts: ``[queues.NAME]``, a function's ``sqs`` mappings, the ``send_message`` and
``await_queue`` steps and the ``expect = { queue = ... }`` counts."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from ..config.events import QueueConfig, SqsMappingConfig, events_from_toml
from ..errors import ConfigError
from .checks import _BAD, SECONDS, _anything, _array_of, _Checker, _kind, _number, _scalar, _string, _table_of
from .model import Path_

QUEUE_NAME = r"[A-Za-z0-9_-]{1,75}(\.fifo)?"  # SQS's own rule: 80 characters, .fifo included
DEFAULT_AWAIT_QUEUE_S = 30.0
COUNTS = ("processed", "duplicated", "in_queue", "in_dlq")  # what expect = { queue = ... } may count


def _body(ck: _Checker, value: Any, where: Path_) -> Any:
    """A message body: a string as it is, a table or array as its JSON."""
    if isinstance(value, str):
        return value
    if isinstance(value, dict | list):
        return json.dumps(value, separators=(",", ":"))
    return ck.error(where, f"expected a string, or a table or array (sent as JSON), not {_kind(value)}")


_COUNT = _number(0, integer=True)
SEND_KEYS = {
    "queue": _string(QUEUE_NAME, "a queue name"),
    "body": _body,
    "bodies": _array_of(_body, 1),
    "count": _number(1, 10000, integer=True),
    "attributes": _table_of(_scalar),  # message attributes, sent as strings
    "group_id": _string(r"[A-Za-z0-9!-/:-@\[-`{-~]{1,128}", "a message group id"),
}
AWAIT_QUEUE_KEYS = {
    "queue": _string(QUEUE_NAME, "a queue name"),
    "drained": _anything,
    "processed": _COUNT,
    "in_dlq": _COUNT,
    "timeout": SECONDS,
}


def _expected_count(ck: _Checker, value: Any, where: Path_) -> Any:
    """N (exactly), or ``{ at_least = N }`` for a race whose count varies from run to run."""
    if isinstance(value, dict):
        checked = ck.table(value, where, {"at_least": _COUNT}, required=("at_least",))
        return checked if checked is _BAD else {"at_least": checked["at_least"]}
    return _COUNT(ck, value, where)


QUEUE_EXPECT_KEYS = {"queue": _string(QUEUE_NAME, "a queue name"), **{key: _expected_count for key in COUNTS}}


def queues(ck: _Checker, raw: Any, file: Path) -> dict[str, QueueConfig]:
    """``[queues.NAME]`` tables, as a config file has them; a dead-letter queue must be declared too."""
    if raw is None:
        return {}
    if not isinstance(raw, dict):
        ck.error(("queues",), f"expected a table of queues ([queues.NAME]), not {_kind(raw)}")
        return {}
    made: dict[str, QueueConfig] = {}
    for name, spec in raw.items():
        where: Path_ = ("queues", name)
        if _string(QUEUE_NAME, "a queue name")(ck, name, where) is _BAD:
            continue
        if not isinstance(spec, dict):
            ck.error(where, f"expected a table, not {_kind(spec)}")
            continue
        try:
            made[name] = events_from_toml({"queues": {name: dict(spec)}}, file).queues[0]
        except (ConfigError, TypeError, ValueError) as exc:
            ck.error(where, str(exc).split("]: ")[-1].removeprefix(f"queue {name}: "))
    for name, queue in made.items():
        if queue.dead_letter_queue is not None and queue.dead_letter_queue not in raw:
            ck.error(("queues", name, "dead_letter_queue"), f"no queue {queue.dead_letter_queue!r} is declared; "
                     f"known: {', '.join(raw)}")
    return made


def mappings(ck: _Checker, function: str, raw: Any, declared: dict[str, QueueConfig],
             file: Path) -> tuple[SqsMappingConfig, ...]:
    """A function's ``sqs = [{ queue = "NAME", batch_size = 10, ... }]``, with a config file's keys."""
    where: Path_ = ("functions", function, "sqs")
    if not isinstance(raw, list) or not all(isinstance(item, dict) for item in raw):
        ck.error(where, "expected an array of tables: [{ queue = \"NAME\", batch_size = 10, ... }]")
        return ()
    made: list[SqsMappingConfig] = []
    for index, item in enumerate(raw):
        if item.get("queue") not in declared:
            ck.error((*where, index), f"queue {item.get('queue')!r} is not declared; known: "
                     f"{', '.join(declared) or 'none ([queues.NAME] declares one)'}")
            continue
        try:
            made.extend(events_from_toml({"functions": {function: {"sqs": [dict(item)]}}}, file).sqs_mappings)
        except (ConfigError, TypeError, ValueError) as exc:
            ck.error((*where, index), str(exc).split(" #1: ")[-1])
    return tuple(made)


def _queue(ck: _Checker, name: str, where: Path_, declared: dict[str, QueueConfig]) -> bool:
    if name not in declared:
        ck.error(where, f"no queue {name!r} is declared; known: {', '.join(declared) or 'none'}")
        return False
    return True


def send_message(ck: _Checker, value: Any, here: Path_,
                 declared: dict[str, QueueConfig]) -> tuple[str, tuple[dict[str, Any], ...]] | None:
    """The queue and SendMessage's fields, one table per message (``count`` times each body)."""
    checked = ck.table(value, here, SEND_KEYS, required=("queue",))
    if checked is _BAD or not _queue(ck, checked["queue"], (*here, "queue"), declared):
        return None
    if ("body" in checked) == ("bodies" in checked):
        ck.error(here, "give body (one message) or bodies (an array), one of them")
        return None
    queue = declared[checked["queue"]]
    if queue.fifo and "group_id" not in checked:
        ck.error((*here, "group_id"), f"required: {queue.name} is a FIFO queue")
        return None
    if not queue.fifo and "group_id" in checked:
        ck.error((*here, "group_id"), f"only for a FIFO queue; {queue.name} is not one")
        return None
    bodies = checked["bodies"] if "bodies" in checked else [checked["body"]]
    fields: dict[str, Any] = {}
    if "attributes" in checked:
        fields["MessageAttributes"] = {key: {"DataType": "String", "StringValue": text}
                                       for key, text in checked["attributes"].items()}
    if "group_id" in checked:
        fields["MessageGroupId"] = checked["group_id"]
    messages = tuple({"MessageBody": body, **fields} for _ in range(checked.get("count", 1)) for body in bodies)
    return checked["queue"], messages


def await_queue(ck: _Checker, value: Any, here: Path_,
                declared: dict[str, QueueConfig]) -> tuple[str, dict[str, int], float] | None:
    """The queue, what to wait for (``in_queue`` 0 when drained, ``processed`` and ``in_dlq`` at least N), and
    for how long."""
    checked = ck.table(value, here, AWAIT_QUEUE_KEYS, required=("queue",))
    if checked is _BAD or not _queue(ck, checked["queue"], (*here, "queue"), declared):
        return None
    if "drained" in checked and checked["drained"] is not True:
        ck.error((*here, "drained"), "only drained = true (until no message is left, visible or in flight)")
        return None
    counts = {key: checked[key] for key in ("processed", "in_dlq") if key in checked}
    if checked.get("drained"):
        counts["in_queue"] = 0
    if not counts:
        ck.error(here, "says nothing to wait for: give drained = true, processed = N or in_dlq = N")
        return None
    if "in_dlq" in counts and declared[checked["queue"]].dead_letter_queue is None:
        ck.error((*here, "in_dlq"), f"queue {checked['queue']} has no dead_letter_queue")
        return None
    return checked["queue"], counts, float(checked.get("timeout", DEFAULT_AWAIT_QUEUE_S))


def queue_counts(ck: _Checker, value: Any, here: Path_,
                 declared: dict[str, QueueConfig]) -> tuple[str, dict[str, Any]] | None:
    """``expect = { queue = "NAME", processed = N, duplicated = N, in_queue = N, in_dlq = N }``; each N may be
    ``{ at_least = N }``."""
    checked = ck.table(value, here, QUEUE_EXPECT_KEYS, required=("queue",))
    if checked is _BAD or not _queue(ck, checked["queue"], (*here, "queue"), declared):
        return None
    counts = {key: checked[key] for key in COUNTS if key in checked}
    if not counts:
        ck.error(here, f"says nothing to check: give at least one of {', '.join(COUNTS)}")
        return None
    if "in_dlq" in counts and declared[checked["queue"]].dead_letter_queue is None:
        ck.error((*here, "in_dlq"), f"queue {checked['queue']} has no dead_letter_queue")
        return None
    return checked["queue"], counts


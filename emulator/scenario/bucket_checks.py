"""Checking a scenario's S3 buckets and schedules: ``[buckets.NAME]`` with their queue notifications, a function's
``schedules``, and the ``put_object`` and ``trigger`` steps."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ..config.events import BucketConfig, QueueConfig, ScheduleConfig, events_from_toml
from ..errors import ConfigError
from .checks import _BAD, _Checker, _kind, _number, _string
from .model import Path_

BUCKET_NAME = r"[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]"  # S3's own rule for a bucket name
PUT_KEYS = {
    "bucket": _string(BUCKET_NAME, "a bucket name"),
    "key": _string(r".{1,1024}", "an object key"),
    "body": _string(),
    "count": _number(1, 10000, integer=True),
}


def buckets(ck: _Checker, raw: Any, declared: dict[str, QueueConfig], file: Path) -> dict[str, BucketConfig]:
    """``[buckets.NAME]`` tables, as a config file has them; the queue a notification names must be declared."""
    if raw is None:
        return {}
    if not isinstance(raw, dict):
        ck.error(("buckets",), f"expected a table of buckets ([buckets.NAME]), not {_kind(raw)}")
        return {}
    made: dict[str, BucketConfig] = {}
    for name, spec in raw.items():
        where: Path_ = ("buckets", name)
        if _string(BUCKET_NAME, "a bucket name")(ck, name, where) is _BAD:
            continue
        if not isinstance(spec, dict):
            ck.error(where, f"expected a table, not {_kind(spec)}")
            continue
        try:
            bucket = events_from_toml({"buckets": {name: dict(spec)}}, file).buckets[0]
        except (ConfigError, TypeError, ValueError) as exc:
            ck.error(where, str(exc).split("]: ")[-1])
            continue
        for index, notification in enumerate(bucket.notifications):
            if notification.queue not in declared:
                ck.error((*where, "queue_notifications", index, "queue"),
                         f"no queue {notification.queue!r} is declared; known: {', '.join(declared) or 'none'}")
        made[name] = bucket  # declared even so: the steps that name it add no noise
    return made


def schedules(ck: _Checker, function: str, raw: Any, file: Path) -> tuple[ScheduleConfig, ...]:
    """A function's ``schedules = [{ name = "Every5Minutes", expression = "rate(5 minutes)" }]``, with a config
    file's keys; a schedule is named ``FUNCTION.NAME``."""
    where: Path_ = ("functions", function, "schedules")
    if not isinstance(raw, list) or not all(isinstance(item, dict) for item in raw):
        ck.error(where, "expected an array of tables: [{ name = \"NAME\", expression = \"rate(5 minutes)\" }]")
        return ()
    made: list[ScheduleConfig] = []
    for index, item in enumerate(raw):
        # Checked one by one; the default name keeps the entry's position, as in a config file.
        named = {"name": f"Schedule{index + 1}", **item}
        try:
            made.extend(events_from_toml({"functions": {function: {"schedules": [named]}}}, file).schedules)
        except (ConfigError, TypeError, ValueError) as exc:
            ck.error((*where, index), str(exc).split(" #1: ")[-1])
    return tuple(made)


def put_object(ck: _Checker, value: Any, here: Path_,
               declared: dict[str, BucketConfig]) -> tuple[str, tuple[tuple[str, str], ...]] | None:
    """The bucket and its objects, (key, body) each: ``count`` objects make ``{n}`` in the key 1, 2, ..."""
    checked = ck.table(value, here, PUT_KEYS, required=("bucket", "key"))
    if checked is _BAD:
        return None
    if checked["bucket"] not in declared:
        ck.error((*here, "bucket"), f"no bucket {checked['bucket']!r} is declared; known: "
                 f"{', '.join(declared) or 'none ([buckets.NAME] declares one)'}")
        return None
    count = checked.get("count", 1)
    if count > 1 and "{n}" not in checked["key"]:
        ck.error((*here, "key"), "with count above 1, the key needs {n} (each object a key of its own)")
        return None
    body = checked.get("body", "")
    objects = tuple((checked["key"].replace("{n}", str(n)), body) for n in range(1, count + 1))
    return checked["bucket"], objects


def trigger(ck: _Checker, value: Any, here: Path_, declared: dict[str, ScheduleConfig]) -> str | None:
    """A declared schedule's name, ``FUNCTION.NAME``."""
    if not isinstance(value, str) or value not in declared:
        ck.error(here, f"a declared schedule's name (FUNCTION.NAME); known: {', '.join(declared) or 'none'}, "
                       f"not {value!r}")
        return None
    return value

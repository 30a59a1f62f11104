"""The warm-state leak detector: flags an invocation whose response or log carries a value that appeared only in
an earlier invocation's event on the same environment (a global that kept the previous caller's data)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass

MIN_TOKEN_CHARS = 4  # shorter values ("GET", "1") are everywhere and would only raise false alarms
MAX_REMEMBERED = 10_000  # values remembered per environment


@dataclass(frozen=True, slots=True)
class Leak:
    request_id: str  # the invocation that leaked
    value: str
    source_request_id: str  # the earlier invocation whose event carried the value
    where: str  # "response" | "log"

    def describe(self) -> str:
        return (
            f"LEAK RequestId: {self.request_id}\t{self.where} carries {self.value!r} from the event of "
            f"invocation {self.source_request_id} on this environment"
        )


def event_values(payload: bytes) -> set[str]:
    try:
        event = json.loads(payload)
    except ValueError:
        return set()
    return {value for value in _strings(event) if len(value) >= MIN_TOKEN_CHARS}


def _strings(node: object) -> Iterator[str]:
    if isinstance(node, str):
        yield node
    elif isinstance(node, dict):
        for value in node.values():
            yield from _strings(value)
    elif isinstance(node, list):
        for value in node:
            yield from _strings(value)


class LeakDetector:
    """One per environment: remembers event values, checks each new invocation against them."""

    def __init__(self) -> None:
        self._seen: dict[str, str] = {}  # value -> request id of the first event that carried it

    def check(self, request_id: str, event: bytes, response: bytes | None, log: str) -> list[Leak]:
        current = event_values(event)
        found = []
        response_text = response.decode("utf-8", "replace") if response else ""
        for value, source in self._seen.items():
            if value in current:
                continue
            if value in response_text:
                found.append(Leak(request_id, value, source, "response"))
            elif value in log:
                found.append(Leak(request_id, value, source, "log"))
        for value in current:
            if len(self._seen) < MAX_REMEMBERED:
                self._seen.setdefault(value, request_id)
        return found

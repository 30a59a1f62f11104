"""What happens to a batch once the function has answered: which messages are deleted, and which come back after
the queue's visibility timeout (a function error, or the items named in ``batchItemFailures``)."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from ...engine.invocation import Outcome


@dataclass(frozen=True)
class BatchResult:
    delete: tuple[Mapping[str, Any], ...]  # messages processed: deleted from the queue
    failed: tuple[str, ...]  # message ids left to come back
    reason: str  # why, in LastProcessingResult's words


def settle(messages: Sequence[Mapping[str, Any]], outcome: Outcome, *, report_item_failures: bool) -> BatchResult:
    """Lambda's rules (Using Lambda with Amazon SQS, "Handling errors"): a function error fails the whole batch;
    with ``ReportBatchItemFailures`` the response's ``batchItemFailures`` name the messages that failed, and a
    response Lambda cannot read (not JSON, an empty or unknown ``itemIdentifier``) fails the whole batch too."""
    every_id = tuple(str(m["MessageId"]) for m in messages)
    if not outcome.ok:
        return BatchResult((), every_id, f"FUNCTION_ERROR: {outcome.error_type}")
    if not report_item_failures:
        return BatchResult(tuple(messages), (), "OK")
    try:
        response: Any = json.loads(outcome.payload) if outcome.payload.strip() else None
    except ValueError:
        return BatchResult((), every_id, "FUNCTION_ERROR: the response is not valid JSON (batchItemFailures)")
    failures = response.get("batchItemFailures") if isinstance(response, dict) else None
    if not failures:  # null, empty, or no such key: the whole batch succeeded
        return BatchResult(tuple(messages), (), "OK")
    if not isinstance(failures, list):
        return BatchResult((), every_id, "FUNCTION_ERROR: batchItemFailures is not a list")
    failed: set[str] = set()
    for item in failures:
        identifier = item.get("itemIdentifier") if isinstance(item, dict) else None
        if not identifier or identifier not in every_id:
            return BatchResult((), every_id, f"FUNCTION_ERROR: invalid itemIdentifier {identifier!r}")
        failed.add(str(identifier))
    keep = tuple(m for m in messages if str(m["MessageId"]) not in failed)
    return BatchResult(keep, tuple(i for i in every_id if i in failed), "PARTIAL_BATCH_FAILURE")

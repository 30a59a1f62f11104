"""Faster paths through the embedded moto server's SQS, with moto's semantics: applied in the moto child only, and
only to the moto version they were written against (``MOTO_VERSION``); any other version runs unpatched.

moto 5.2.5's SQS walks every message of a queue where one message, or none, would do: ``Queue.attributes`` counts
the visible, in-flight and delayed messages (three walks) and is read once per message sent and three times per
message received (for ``ContentBasedDeduplication`` and ``MessageRetentionPeriod``), so a receive with 1,000 messages
waiting took 1.4 s; a delete walks the queue twice per receipt handle; a long poll wakes on every message sent and
rebuilds the list of visible messages; every timestamp goes through ``datetime``; a receipt handle takes 185 calls
to the random generator. Receives are not serialised, so two concurrent long polls can take the same message
(duplicates that SQS's own at-least-once delivery would not produce so readily), and a delete that rebuilds the
message list while a send appends to it can drop the new message. The replacements below read the one attribute
they need, walk a queue once and stop at what they need, hold the queue's lock (moto's own
``Queue._messages_lock``) while they take or remove messages, and keep the rest: visibility timeouts, receive
counts, the redrive to the dead-letter queue at ``maxReceiveCount``, FIFO message groups (a group with a message in
flight is not delivered from), delays, retention, deduplication, and ``ReceiptHandleIsInvalid`` for a handle the
queue never gave.

The bodies of ``receive_message``, ``send_message`` and ``_validate_message`` follow moto 5.2.5's (Apache-2.0) line
for line where they are not changed, so that a reader can compare them.
"""

from __future__ import annotations

import copy
import hashlib
import string
import sys
import time
from collections.abc import Iterable
from typing import Any

MOTO_VERSION = "5.2.5"


def _unix_time(dt: Any = None) -> float:
    """moto's ``unix_time`` (seconds since the epoch, UTC), without building two datetimes per call."""
    if dt is not None:
        return float(_original_unix_time(dt))
    return time.time()


def _unix_time_millis(dt: Any = None) -> float:
    return _unix_time(dt) * 1000.0


_original_unix_time: Any = None


def _receivable(message: Any, now_ms: float) -> bool:
    """``Message.visible and not Message.delayed``, at one instant."""
    return bool(now_ms > message.visible_at and not now_ms < message.delayed_until)


def _pending_groups(queue: Any) -> set[str]:
    # A snapshot first: moto's ChangeMessageVisibility edits the set without the queue's lock.
    return {m.group_id for m in tuple(queue._pending_messages) if m.group_id is not None}


def _has_receivable(queue: Any) -> bool:
    """What a long poll waits for: a message it could take (visible and not delayed; on a FIFO queue, not in a group
    with a message still in flight). moto waits for any visible message, and so spins through a FIFO queue whose
    visible messages are all held back by their groups."""
    now_ms = time.time() * 1000.0
    in_flight_groups: set[str] = set()
    if queue.fifo_queue:
        in_flight_groups = {
            m.group_id
            for m in tuple(queue._pending_messages)
            if m.group_id is not None and not _receivable(m, now_ms)
        }
    return any(
        _receivable(m, now_ms) and (m.group_id is None or m.group_id not in in_flight_groups) for m in queue._messages
    )


def _wait_for_messages(queue: Any, timeout: float) -> None:
    with queue._messages_lock:
        queue._messages_lock.wait_for(lambda: _has_receivable(queue), timeout=timeout)


def receive_message(
    self: Any,
    queue_name: str,
    count: int,
    wait_seconds_timeout: int,
    visibility_timeout: int,
    message_attribute_names: list[str] | None = None,
) -> list[Any]:
    from moto.sqs.models import _filter_message_attributes

    if message_attribute_names is None:
        message_attribute_names = []
    queue = self.get_queue(queue_name)
    result: list[Any] = []
    previous_result_count = len(result)

    polling_end = _unix_time() + wait_seconds_timeout

    while True:
        if result or (wait_seconds_timeout and _unix_time() > polling_end):
            break

        messages_to_dlq: list[Any] = []

        # Changed: one receive at a time per queue (moto lets two take the same message), walking the messages
        # once and stopping at ``count`` instead of first listing every visible one.
        with queue._messages_lock:
            currently_pending_groups = _pending_groups(queue) if queue.fifo_queue else set()
            now_ms = _unix_time_millis()
            for message in queue._messages:  # appended to, or replaced, only under this lock
                if not _receivable(message, now_ms):
                    continue

                if message in queue.pending_messages:
                    # The message is pending but is visible again, so the
                    # consumer must have timed out.
                    queue.pending_messages.discard(message)
                    currently_pending_groups = _pending_groups(queue) if queue.fifo_queue else set()

                if message.group_id and queue.fifo_queue:
                    if message.group_id in currently_pending_groups:
                        # A previous call is still processing messages in this group, so we cannot deliver this one.
                        continue

                if (
                    queue.dead_letter_queue is not None
                    and queue.redrive_policy
                    and message.approximate_receive_count >= queue.redrive_policy["maxReceiveCount"]
                ):
                    messages_to_dlq.append(message)
                    continue

                queue.pending_messages.add(message)
                message.mark_received(visibility_timeout=visibility_timeout)
                # Changed: a shallow copy (the filter below replaces the copy's attributes, it does not edit them).
                message_copy = copy.copy(message)
                _filter_message_attributes(message_copy, message_attribute_names)
                if not self.is_message_valid_based_on_retention_period(queue_name, message):
                    break
                result.append(message_copy)
                if len(result) >= count:
                    break

            for message in messages_to_dlq:
                queue._messages.remove(message)
        # Changed: into the dead-letter queue outside this queue's lock (the two may name each other).
        for message in messages_to_dlq:
            queue.dead_letter_queue.add_message(message)

        if previous_result_count == len(result):
            if wait_seconds_timeout == 0:
                # There is no timeout and no additional results,
                # so break to avoid an infinite loop.
                break

            _wait_for_messages(queue, 1)
            continue

        previous_result_count = len(result)

    return result


def is_message_valid_based_on_retention_period(self: Any, queue_name: str, message: Any) -> bool:
    # Changed: the one attribute, not every attribute (which counts the queue's messages three times).
    retention_period = int(self.get_queue(queue_name).message_retention_period)
    retain_until = retention_period + message.sent_timestamp / 1000
    return bool(retain_until > _unix_time())


def _content_based_deduplication(queue: Any) -> str | None:
    """``queue.attributes.get("ContentBasedDeduplication")`` without counting the messages: "true"/"false" on a
    FIFO queue, None on a standard one (where moto lists no such attribute)."""
    if not queue.fifo_queue:
        return None
    return str(bool(queue.content_based_deduplication)).lower()


def _validate_message(
    self: Any,
    queue: Any,
    message_body: str,
    delay_seconds: int,
    deduplication_id: str | None = None,
    group_id: str | None = None,
    validate_group_id: bool = True,
) -> None:
    from moto.sqs.exceptions import InvalidParameterValue, MissingParameter

    if queue.fifo_queue:
        if _content_based_deduplication(queue) == "false" and not group_id:
            msg = "MessageGroupId"
            raise MissingParameter(msg)

        if _content_based_deduplication(queue) == "false" and group_id and not deduplication_id:
            msg = (
                "The queue should either have ContentBasedDeduplication enabled or "
                "MessageDeduplicationId provided explicitly"
            )
            raise InvalidParameterValue(msg)

        if delay_seconds > 0:
            raise InvalidParameterValue(
                f"Value {delay_seconds} for parameter DelaySeconds is invalid. Reason: "
                "The request include parameter that is not valid for this queue type."
            )

    if len(message_body) > queue.maximum_message_size:
        msg = (
            "One or more parameters are invalid. Reason: Message must be shorter than "
            f"{queue.maximum_message_size} bytes."
        )
        raise InvalidParameterValue(msg)

    if group_id is None and queue.fifo_queue:
        # MessageGroupId is a mandatory parameter for all
        # messages in a fifo queue
        raise MissingParameter("MessageGroupId")


def send_message(
    self: Any,
    queue_name: str,
    message_body: str,
    message_attributes: dict[str, Any] | None = None,
    delay_seconds: int | None = None,
    deduplication_id: str | None = None,
    group_id: str | None = None,
    system_attributes: dict[str, Any] | None = None,
    validate_group_id: bool = True,
) -> Any:
    from moto.moto_api._internal import mock_random as random
    from moto.sqs.exceptions import InvalidParameterValue
    from moto.sqs.models import MAXIMUM_MESSAGE_DELAY, Message

    queue = self.get_queue(queue_name)

    self._validate_message(
        queue,
        message_body=message_body,
        delay_seconds=int(delay_seconds or 0),
        deduplication_id=deduplication_id,
        group_id=group_id,
        validate_group_id=validate_group_id,
    )

    if delay_seconds is not None:
        delay_seconds = int(delay_seconds)
    else:
        delay_seconds = queue.delay_seconds

    message_id = str(random.uuid4())
    message = Message(message_id, message_body, system_attributes)

    # if content based deduplication is set then set sha256 hash of the message
    # as the deduplication_id
    if _content_based_deduplication(queue) == "true":  # Changed: the one attribute
        sha256 = hashlib.sha256()
        sha256.update(message_body.encode("utf-8"))
        message.deduplication_id = sha256.hexdigest()

    # Attributes, but not *message* attributes
    if deduplication_id is not None:
        message.deduplication_id = deduplication_id
        message.sequence_number = "".join(random.choice(string.digits) for _ in range(20))

    if group_id is not None:
        message.group_id = group_id

    if message_attributes:
        message.message_attributes = message_attributes

    if delay_seconds > MAXIMUM_MESSAGE_DELAY:  # type: ignore[operator]
        msg = (
            f"Value {delay_seconds} for parameter DelaySeconds is invalid. "
            "Reason: DelaySeconds must be >= 0 and <= 900."
        )
        raise InvalidParameterValue(msg)

    message.mark_sent(delay_seconds=delay_seconds)

    queue.add_message(message)

    return message


def _delete(queue: Any, handles: Iterable[str]) -> set[str]:
    """Delete the messages these receipt handles (current or earlier ones) belong to, in one walk under the
    queue's lock; the handles that were valid (known, or of a message deleted before)."""
    wanted = set(handles)
    with queue._messages_lock:
        valid: set[str] = wanted & queue.deleted_messages
        wanted -= valid
        if wanted:
            keep = []
            for message in queue._messages:
                hit = message.receipt_handle in wanted or any(h in wanted for h in message._old_receipt_handles)
                if not hit:
                    keep.append(message)
                    continue
                handles_of = message.all_receipt_handles
                valid.update(h for h in handles_of if h in wanted)
                queue.pending_messages.discard(message)
                queue.deleted_messages.update(handles_of)
            if len(keep) != len(queue._messages):
                queue._messages = keep
                if queue.fifo_queue:
                    queue._messages_lock.notify_all()  # the deleted message's group may be free again
    return valid


def queue_delete_message(self: Any, receipt_handle: str) -> None:
    from moto.sqs.exceptions import ReceiptHandleIsInvalid

    if receipt_handle not in _delete(self, (receipt_handle,)):
        raise ReceiptHandleIsInvalid()


def delete_message_batch(
    self: Any, queue_name: str, receipts: list[dict[str, Any]]
) -> tuple[list[str], list[dict[str, Any]]]:
    queue = self.get_queue(queue_name)
    valid = _delete(queue, [r["ReceiptHandle"] for r in receipts])
    success = []
    errors = []
    for receipt_and_id in receipts:
        if receipt_and_id["ReceiptHandle"] in valid:
            success.append(receipt_and_id["Id"])
        else:
            errors.append(
                {
                    "Id": receipt_and_id["Id"],
                    "SenderFault": True,
                    "Code": "ReceiptHandleIsInvalid",
                    "Message": f'The input receipt handle "{receipt_and_id["ReceiptHandle"]}" is not a valid '
                    "receipt handle.",
                }
            )
    return success, errors


def get_queue_attributes(self: Any, queue_name: str, attribute_names: list[str]) -> dict[str, Any]:
    from moto.sqs.exceptions import InvalidAttributeName

    queue = self.get_queue(queue_name)
    if not attribute_names:
        return {}

    valid_names = ["All", *queue.BASE_ATTRIBUTES, *queue.FIFO_ATTRIBUTES, *queue.KMS_ATTRIBUTES]
    invalid_name = next((name for name in attribute_names if name not in valid_names), None)

    if invalid_name or invalid_name == "":
        raise InvalidAttributeName(invalid_name)

    every = queue.attributes  # Changed: counted once, not three times per name asked for
    if "All" in attribute_names:
        return dict(every)
    return {name: every[name] for name in attribute_names if every.get(name) is not None}


def _locked_visibility_change(original: Any) -> Any:
    """``SQSBackend.change_message_visibility`` under the queue's lock (it edits the in-flight set), waking the long
    polls: a message made visible (``VisibilityTimeout`` 0) is delivered at once, as SQS does, not on the next
    one-second check."""

    def change_message_visibility(self: Any, queue_name: str, receipt_handle: str, visibility_timeout: int) -> None:
        queue = self.get_queue(queue_name)
        with queue._messages_lock:
            original(self, queue_name, receipt_handle, visibility_timeout)
            queue._messages_lock.notify_all()

    return change_message_visibility


def generate_receipt_handle() -> str:
    """moto's 185 random lower-case letters, drawn in one call rather than one call per letter."""
    from moto.moto_api._internal import mock_random as random

    return "".join(random.choices(string.ascii_lowercase, k=185))


def _memoised_backend_for_host(original: Any) -> Any:
    """``DomainDispatcherApplication.get_backend_for_host``, which lists moto's package directory on every request,
    remembered per host (its answer depends on the host alone)."""
    known: dict[Any, Any] = {}

    def get_backend_for_host(self: Any, host: str | None) -> Any:
        if host not in known:
            known[host] = original(self, host)
        return known[host]

    return get_backend_for_host


def apply() -> bool:
    """Install the faster paths if moto is the version they follow; False (and a line on stderr) otherwise."""
    global _original_unix_time
    import moto
    from moto.moto_server.werkzeug_app import DomainDispatcherApplication
    from moto.sqs import models

    if moto.__version__ != MOTO_VERSION:
        print(
            f"moto {moto.__version__}: the SQS speed-ups follow moto {MOTO_VERSION} and are not applied "
            "(receives walk every queued message)",
            file=sys.stderr,
        )
        return False
    sqs_models: Any = models  # moto's module and classes, replaced in place (their types are moto's own)
    _original_unix_time = sqs_models.unix_time
    sqs_models.unix_time = _unix_time
    sqs_models.unix_time_millis = _unix_time_millis
    sqs_models.generate_receipt_handle = generate_receipt_handle
    backend: Any = sqs_models.SQSBackend
    backend.receive_message = receive_message
    backend.is_message_valid_based_on_retention_period = is_message_valid_based_on_retention_period
    backend._validate_message = _validate_message
    backend.send_message = send_message
    backend.delete_message_batch = delete_message_batch
    backend.get_queue_attributes = get_queue_attributes
    backend.change_message_visibility = _locked_visibility_change(backend.change_message_visibility)
    queue: Any = sqs_models.Queue
    queue.delete_message = queue_delete_message
    queue.wait_for_messages = _wait_for_messages
    dispatcher: Any = DomainDispatcherApplication
    dispatcher.get_backend_for_host = _memoised_backend_for_host(dispatcher.get_backend_for_host)
    return True

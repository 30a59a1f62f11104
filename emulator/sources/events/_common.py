"""What the event builders share: AWS's timestamp formats and the identifiers they make up."""

from __future__ import annotations

import secrets
import uuid
from datetime import UTC, datetime


def iso_millis(when: datetime | None = None) -> str:
    """``2026-01-31T12:34:56.789Z``, as S3, SNS and EventBridge write event times."""
    when = (when or datetime.now(UTC)).astimezone(UTC)
    return when.strftime("%Y-%m-%dT%H:%M:%S.") + f"{when.microsecond // 1000:03d}Z"


def new_uuid() -> str:
    return str(uuid.uuid4())


def hex_id(length: int) -> str:
    """An upper-case hexadecimal identifier (S3 request ids, sequencers)."""
    return secrets.token_hex((length + 1) // 2).upper()[:length]

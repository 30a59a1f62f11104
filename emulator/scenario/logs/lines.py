"""One log event as every reader hands it on (file, line, time, stream, message), and the converter's error."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime

from ...errors import LambdaFreezeError


class LogsError(LambdaFreezeError):
    """Logs that cannot become a scenario; the message names the file and line, and the fix."""

    error_type = "InvalidLogs"
    status = 400


@dataclass(frozen=True)
class LogLine:
    """A log event: a CloudWatch event's message (which may span several lines) or one pasted line."""

    file: str
    line: int  # 1-based, where the event starts in its file
    message: str
    time_s: float | None = None  # seconds since the epoch; None when the input carries no time
    stream: str | None = None  # the log stream, one per execution environment
    group: str | None = None  # the log group (/aws/lambda/NAME), when the input names it

    @property
    def where(self) -> str:
        return f"{self.file}:{self.line}"


# ISO 8601 as CloudWatch, the CLI and the runtimes print it: 2024-01-02T03:04:05.678Z, 2024-01-02T03:04:05.678000+00:00,
# and Logs Insights' "2024-01-02 03:04:05.678".
TIMESTAMP = r"\d{4}-\d\d-\d\d[T ]\d\d:\d\d:\d\d(?:\.\d+)?(?:Z|[+-]\d\d:?\d\d)?"
_TIMESTAMP = re.compile(TIMESTAMP)


def parse_time(text: str) -> float | None:
    """Seconds since the epoch of an ISO 8601 timestamp (UTC when it names no zone), or None."""
    if not _TIMESTAMP.fullmatch(text):
        return None
    text = text.replace(" ", "T").replace("Z", "+00:00")
    if re.search(r"[+-]\d{4}$", text):
        text = f"{text[:-2]}:{text[-2:]}"
    head, dot, rest = text.partition(".")
    if dot:  # fromisoformat wants 3 or 6 digits of fraction before Python 3.11's looser parser; keep microseconds
        digits = re.match(r"\d+", rest)
        assert digits is not None
        text = f"{head}.{digits[0][:6].ljust(6, '0')}{rest[len(digits[0]):]}"
    stamp = datetime.fromisoformat(text)
    if stamp.tzinfo is None:
        stamp = stamp.replace(tzinfo=UTC)
    return stamp.timestamp()


def epoch_ms(value: object) -> float | None:
    """CloudWatch's ``timestamp``: milliseconds since the epoch, as a number."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value) / 1000

"""A log sink that writes the emulator's function logs as ``aws logs tail`` prints CloudWatch's: time, log stream
(one per execution environment), message; what ``scenario from-logs`` reads back."""

from __future__ import annotations

import hashlib
import threading
from datetime import UTC, datetime
from typing import TextIO


class TailRecorder:
    """``2024-01-02T03:04:05.678000+00:00 2024/01/02/[$LATEST]<environment> START RequestId: ...``."""

    def __init__(self, stream: TextIO):
        self._stream = stream
        self._lock = threading.Lock()
        self._names: dict[str, str] = {}

    def stream_name(self, env_id: str, now: datetime) -> str:
        if env_id not in self._names:
            digest = hashlib.sha256(env_id.encode()).hexdigest()[:32]
            self._names[env_id] = f"{now:%Y/%m/%d}/[$LATEST]{digest}"
        return self._names[env_id]

    def __call__(self, function: str, env_id: str, line: str) -> None:
        now = datetime.now(UTC)
        with self._lock:
            self._stream.write(f"{now.isoformat()} {self.stream_name(env_id, now)} {line}\n")
            self._stream.flush()

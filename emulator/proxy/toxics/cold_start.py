"""``cold_start``: the upstream is asleep (an Aurora Serverless cluster paused); the first connection wakes it.

Waking takes delay_s: every connection made meanwhile waits for the same wake-up to finish, then connects; once
awake, connections go straight through. To emulate the next auto-pause, remove the toxic and add it again.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, ClassVar

from .base import ConnectToxic, check_non_negative

if TYPE_CHECKING:
    from ..attempt import ConnectAttempt


@dataclass(frozen=True, slots=True)
class ColdStart(ConnectToxic):
    kind: ClassVar[str] = "cold_start"
    delay_s: float

    def __post_init__(self) -> None:
        check_non_negative(self, delay_s=self.delay_s)

    async def admit(self, attempt: ConnectAttempt) -> None:
        awake_at_s = attempt.shared.get("awake_at_s")
        now_s = time.monotonic()
        if awake_at_s is None:
            awake_at_s = attempt.shared["awake_at_s"] = now_s + self.delay_s
            attempt.fired(f"waking the upstream: {self.delay_s:g} s")
        if awake_at_s > now_s:
            attempt.fired(f"waiting {awake_at_s - now_s:.3f} s for the upstream to wake")
            await attempt.sleep_until(awake_at_s)

"""``slow_connect``: every new connection waits delay_s before the proxy connects it to the upstream."""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, ClassVar

from .base import ConnectToxic, check_non_negative

if TYPE_CHECKING:
    from ..attempt import ConnectAttempt


@dataclass(frozen=True, slots=True)
class SlowConnect(ConnectToxic):
    """The client's TCP connect succeeds at once (the proxy accepts); its first reply comes delay_s later.

    Bytes the client sends meanwhile are kept and delivered once the upstream connection is made. Removing the
    toxic ends the wait of the connections still waiting.
    """

    kind: ClassVar[str] = "slow_connect"
    delay_s: float

    def __post_init__(self) -> None:
        check_non_negative(self, delay_s=self.delay_s)

    async def admit(self, attempt: ConnectAttempt) -> None:
        attempt.fired(f"connect delayed {self.delay_s:g} s")
        await attempt.sleep_until(time.monotonic() + self.delay_s)

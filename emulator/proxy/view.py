"""What the fault proxy needs to know about an execution environment: who it is and whether it is frozen."""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol

FreezeListener = Callable[[bool], None]
"""Told ``True`` when the environment freezes and ``False`` when it thaws."""


class EnvironmentView(Protocol):
    """An execution environment as the proxy sees it.

    ``add_freeze_listener`` callbacks are called synchronously on every freeze and thaw, on the thread that runs
    the proxy's event loop: right after the runtime is frozen, and right before it is thawed (so bytes held for a
    frozen environment are on their way as it resumes). A callback called from another thread is tolerated: the
    proxy moves it onto its loop.
    """

    @property
    def id(self) -> str: ...

    @property
    def frozen(self) -> bool: ...

    def add_freeze_listener(self, listener: FreezeListener) -> None: ...

    def remove_freeze_listener(self, listener: FreezeListener) -> None: ...

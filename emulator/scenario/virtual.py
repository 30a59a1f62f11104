"""A scenario in virtual time: its functions run on virtual clocks when a step freezes virtually, and each database
upstream's idle timeout, as the scenario declares it for the real server, is what the proxy ages connections by."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING

from .model import Scenario

if TYPE_CHECKING:
    from ..harness import LambdaFunction

# The database setting that closes an idle session, and how that server closes it (proxy/aging.py).
IDLE_SETTINGS = {"postgresql": ("idle_session_timeout_s", "postgresql"), "mysql": ("wait_timeout_s", "mariadb")}


def freezes_virtually(scenario: Scenario) -> bool:
    """Whether the scenario's functions run on virtual clocks: when one of its steps freezes virtually (the preload
    costs a few microseconds per clock call, so real-time scenarios go without)."""
    return any(step.virtual for step in scenario.steps)


def declare_server_idle(function: LambdaFunction, scenario: Scenario, targets: Mapping[str, str]) -> None:
    """For each upstream of ``function`` that is one of the scenario's databases with an idle timeout: declare it,
    so a virtual gap closes an idle connection as that server would (``targets``: upstream → database name)."""
    for upstream, target in targets.items():
        database = scenario.databases.get(target)
        if database is None or database.kind not in IDLE_SETTINGS:
            continue
        setting, server = IDLE_SETTINGS[database.kind]
        timeout_s = database.settings.get(setting)
        if timeout_s is not None:
            function.faults(upstream).server_idle_timeout(float(timeout_s), server)

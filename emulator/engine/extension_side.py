"""The environment's side of its extensions: starting the external ones (within INIT's deadline, in the
environment's cgroups), their Extensions API calls passed on to the ``ExtensionHub``, and INIT or the invocation
failed, and the environment replaced, when one crashes or reports an error.
"""

from __future__ import annotations

from typing import Any

from ..config.settings import FunctionConfig
from ..errors import InvalidStateTransition
from .endings import Endings
from .extensions import ExtensionHub, external_extensions
from .freezer import FreezerGroup
from .invocation import Outcome
from .lifecycle import Lifecycle, State
from .process import describe_exit
from .processes import EnvironmentProcesses
from .reports import Reports
from .shutdown import Shutdown


class ExtensionSide:
    def __init__(
        self,
        config: FunctionConfig,
        *,
        lifecycle: Lifecycle,
        hub: ExtensionHub,
        processes: EnvironmentProcesses,
        reports: Reports,
        endings: Endings,
        shutdown: Shutdown,
    ):
        self._config = config
        self._lifecycle = lifecycle
        self._hub = hub
        self._processes = processes
        self._reports = reports
        self._endings = endings
        self._shutdown = shutdown

    async def start(self, env: dict[str, str], group: FreezerGroup) -> bool:
        """Start the external extensions and wait, within INIT's deadline, until each registered or exited; False
        when INIT ended meanwhile (an extension failed to start, crashed, or the deadline came)."""
        # The code's extensions/ folder, then each layer's (/opt/extensions on Lambda).
        folders = (self._config.code_dir, *self._config.layers)
        executables = [path for folder in folders for path in external_extensions(folder)]
        self._hub.expect([path.name for path in executables])
        for path in executables:
            name = path.name
            try:
                pid = await self._processes.start_extension(
                    path,
                    env,
                    group,
                    on_exit=lambda returncode, name=name: self._on_exit(name, returncode),  # type: ignore[misc]
                )
            except OSError as exc:
                self._endings.fail_init(Outcome.error("Extension.LaunchError", f"cannot start {path}: {exc}"), "error")
                return False
            self._shutdown.attached(pid)
        if executables:
            await self._hub.all_registered.wait()  # INIT's deadline timer bounds this wait
        return self._lifecycle.state is State.INITIALIZING

    def _on_exit(self, name: str, returncode: int) -> None:
        registered = any(e.name == name for e in self._hub.extensions.values())
        self._hub.exited(name)
        if not self._lifecycle.live or (returncode == 0 and not registered):
            return  # an extension may decline to run by exiting before it registers
        self._endings.fail("Extension.Crash", f"extension {name} exited: {describe_exit(returncode)}")

    # ------------------------------------------------------------------------------------- Extensions API
    def register(self, name: str | None, events: object) -> tuple[str, dict[str, str]]:
        if self._lifecycle.state is not State.INITIALIZING:
            self._hub.close_registration()
        identifier, body = self._hub.register(name, events)
        subscribed = ", ".join(sorted(self._hub.extensions[identifier].events))
        self._reports.emit(f"EXTENSION\tName: {name}\tState: Ready\tEvents: [{subscribed}]")
        return identifier, body

    async def next_event(self, identifier: str | None) -> dict[str, Any]:
        return await self._hub.next_event(identifier)

    def error(self, identifier: str | None, kind: str, body: bytes, error_type: str | None) -> None:
        extension = self._hub.error(identifier)
        if kind == "init" and self._lifecycle.state is not State.INITIALIZING:
            raise InvalidStateTransition("extension init/error is only allowed during INIT")
        if self._lifecycle.live:
            self._endings.fail(error_type or f"Extension.{kind.capitalize()}Error", f"extension {extension.name}", body)

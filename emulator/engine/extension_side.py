"""The environment's side of its extensions: starting the external ones (within INIT's deadline, in the
environment's cgroups), passing their Extensions API calls on to the ``ExtensionHub``, and failing INIT or the
invocation, and replacing the environment, when one crashes or reports an error.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..config.settings import FunctionConfig
from ..errors import InvalidStateTransition
from .extensions import ExtensionHub, external_extensions
from .freezer import FreezerGroup
from .invocation import Invocation, Outcome
from .lifecycle import Lifecycle, State
from .logs import LineSplitter
from .process import RuntimeProcess, describe_exit


class ExtensionSide:
    """The ``Environment``'s part that faces its extensions."""

    config: FunctionConfig
    lifecycle: Lifecycle
    extensions: ExtensionHub
    current: Invocation | None
    _retry_of: Invocation | None
    _group: FreezerGroup | None
    _lines: LineSplitter
    _progress: asyncio.Event
    _extension_processes: dict[str, RuntimeProcess]

    if TYPE_CHECKING:

        def _advance(self) -> None: ...

        def _attached(self, pid: int) -> None: ...

        def _attach_paths(self) -> tuple[Path, ...]: ...

        def _emit(self, line: str, invocation: Invocation | None = None) -> None: ...

        def _fail_init(self, outcome: Outcome, status: str) -> None: ...

        def _end_invocation(self, invocation: Invocation, *, status: str, error_type: str) -> None: ...

        def _begin_stop(self, reason: str = "spindown") -> None: ...

    async def _start_extensions(self, env: dict[str, str]) -> bool:
        """Start the external extensions and wait, within INIT's deadline, until each registered or exited."""
        assert self._group is not None
        executables = external_extensions(self.config.code_dir)
        self.extensions.expect([path.name for path in executables])
        for path in executables:
            process = RuntimeProcess(
                [str(path)],
                env=env,
                cwd=self.config.code_dir,
                attach_paths=self._attach_paths(),
                on_output=self._lines.feed,
                on_exit=lambda code, name=path.name: self._on_extension_exit(name, code),  # type: ignore[misc]
            )
            try:
                self._attached(await process.start())
            except OSError as exc:
                self._fail_init(Outcome.error("Extension.LaunchError", f"cannot start {path}: {exc}"), "error")
                return False
            self._extension_processes[path.name] = process
        if executables:
            await self.extensions.all_registered.wait()  # INIT's deadline timer bounds this wait
        return self.lifecycle.state is State.INITIALIZING

    def _on_extension_ready(self) -> None:
        self._progress.set()
        self._advance()

    def _on_extension_exit(self, name: str, returncode: int) -> None:
        registered = any(e.name == name for e in self.extensions.extensions.values())
        self.extensions.exited(name)
        if not self.lifecycle.live or (returncode == 0 and not registered):
            return  # an extension may decline to run by exiting before it registers
        message = f"extension {name} exited: {describe_exit(returncode)}"
        self._fail("Extension.Crash", message)

    def _fail(self, error_type: str, message: str, body: bytes | None = None) -> None:
        """A failure of the sandbox itself (an extension crashed or reported one): INIT fails, or the invocation
        does, and the environment is replaced."""
        outcome = Outcome.from_runtime_error(body, error_type) if body else Outcome.error(error_type, message)
        if self.lifecycle.state is State.INITIALIZING:
            self._fail_init(outcome, "error")
            return
        invocation = self.current or self._retry_of
        self.lifecycle.on_exit()
        if invocation is not None:
            if body is None:
                outcome = Outcome.error(error_type, message, request_id=invocation.request_id)
            invocation.resolve(outcome)
            self._end_invocation(invocation, status="error", error_type=error_type)
        self._begin_stop("failure")

    # ------------------------------------------------------------------------------------- Extensions API
    def register_extension(self, name: str | None, events: object) -> tuple[str, dict[str, str]]:
        if self.lifecycle.state is not State.INITIALIZING:
            self.extensions.close_registration()
        identifier, body = self.extensions.register(name, events)
        subscribed = ", ".join(sorted(self.extensions.extensions[identifier].events))
        self._emit(f"EXTENSION\tName: {name}\tState: Ready\tEvents: [{subscribed}]")
        return identifier, body

    async def next_extension_event(self, identifier: str | None) -> dict[str, Any]:
        return await self.extensions.next_event(identifier)

    def extension_error(self, identifier: str | None, kind: str, body: bytes, error_type: str | None) -> None:
        extension = self.extensions.error(identifier)
        if kind == "init" and self.lifecycle.state is not State.INITIALIZING:
            raise InvalidStateTransition("extension init/error is only allowed during INIT")
        if self.lifecycle.live:
            self._fail(error_type or f"Extension.{kind.capitalize()}Error", f"extension {extension.name}", body)

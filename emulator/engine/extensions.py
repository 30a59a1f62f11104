"""The Extensions API 2020-01-01 side of an environment: registered extensions, their events, and whether they
are all back in ``event/next`` (the environment freezes only when they are, and the runtime too).

External extensions are the executables in the function's ``extensions/`` folder (``/opt/extensions`` on
Lambda); the emulator starts them before the runtime. Internal extensions register from the runtime's own process.
"""

from __future__ import annotations

import asyncio
import os
import uuid
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import EnvironmentGone, LambdaFreezeError

EVENT_TYPES = frozenset({"INVOKE", "SHUTDOWN"})
MAX_EXTENSIONS = 10
SHUTDOWN_GRACE_EXTERNAL_S = 2.0  # Lambda's SHUTDOWN phase with one or more external extensions
SHUTDOWN_GRACE_INTERNAL_S = 0.5  # ... with internal extensions only


class ExtensionApiError(LambdaFreezeError):
    status = 403

    def __init__(self, error_type: str, message: str, status: int = 403):
        super().__init__(message)
        self.error_type = error_type
        self.status = status


@dataclass(eq=False)
class Extension:
    name: str
    identifier: str
    events: frozenset[str]
    external: bool
    busy: bool = True  # from registration, or an event handed to it, until its next `event/next`
    exited: bool = False
    waiter: asyncio.Future[dict[str, Any]] | None = None
    queue: deque[dict[str, Any]] = field(default_factory=deque)

    def deliver(self, event: dict[str, Any]) -> None:
        self.busy = True
        if self.waiter is not None and not self.waiter.done():
            self.waiter.set_result(event)
        else:
            self.queue.append(event)


def external_extensions(code_dir: Path) -> list[Path]:
    """The executables of ``<code_dir>/extensions``, in name order."""
    folder = code_dir / "extensions"
    if not folder.is_dir():
        return []
    return sorted(p for p in folder.iterdir() if p.is_file() and os.access(p, os.X_OK))


class ExtensionHub:
    def __init__(self, *, function_name: str, handler: str, account_id: str, on_ready: Callable[[], None]):
        self._function_name = function_name
        self._handler = handler
        self._account_id = account_id
        self._on_ready = on_ready  # an extension came back to `event/next`: the environment may advance
        self.extensions: dict[str, Extension] = {}
        self.registration_open = True
        self.launched: set[str] = set()  # names of the external extensions started
        self._settled: set[str] = set()  # launched ones that registered or exited
        self.all_registered = asyncio.Event()

    def expect(self, names: list[str]) -> None:
        self.launched = set(names)
        if not self.launched:
            self.all_registered.set()

    @property
    def busy(self) -> bool:
        return any(e.busy and not e.exited for e in self.extensions.values())

    @property
    def any_external(self) -> bool:
        return any(e.external for e in self.extensions.values())

    def subscribed(self, event_type: str) -> list[Extension]:
        return [e for e in self.extensions.values() if event_type in e.events and not e.exited]

    # ----------------------------------------------------------------------------------- Extensions API
    def register(self, name: str | None, events: Any) -> tuple[str, dict[str, str]]:
        if not name:
            raise ExtensionApiError("Extension.InvalidExtensionName", "Lambda-Extension-Name header is required")
        if not self.registration_open:
            raise ExtensionApiError("Extension.RegistrationClosed", "registration is only allowed during INIT")
        if not isinstance(events, list) or not all(isinstance(e, str) for e in events):
            raise ExtensionApiError("InvalidRequestFormat", 'expected {"events": ["INVOKE", "SHUTDOWN"]}', 400)
        unknown = sorted(set(events) - EVENT_TYPES)
        if unknown:
            raise ExtensionApiError("Extension.InvalidEventType", f"unknown event type(s): {', '.join(unknown)}", 400)
        if len(self.extensions) >= MAX_EXTENSIONS:
            raise ExtensionApiError("Extension.TooManyExtensions", f"at most {MAX_EXTENSIONS} extensions")
        if any(e.name == name for e in self.extensions.values()):
            raise ExtensionApiError("Extension.InvalidExtensionName", f"an extension named {name} is registered")
        extension = Extension(name, str(uuid.uuid4()), frozenset(events), external=name in self.launched)
        self.extensions[extension.identifier] = extension
        if extension.external:
            self._settle(name)
        body = {"functionName": self._function_name, "functionVersion": "$LATEST", "handler": self._handler}
        return extension.identifier, body

    async def next_event(self, identifier: str | None) -> dict[str, Any]:
        extension = self._find(identifier)
        if extension.waiter is not None and not extension.waiter.done():
            raise ExtensionApiError("Extension.InvalidExtensionState", "event/next is already waiting")
        if extension.queue:
            return extension.queue.popleft()
        extension.busy = False
        waiter: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        extension.waiter = waiter
        self._on_ready()
        try:
            return await waiter
        finally:
            if extension.waiter is waiter:
                extension.waiter = None
                if waiter.cancelled():  # withdrawn (its connection closed): the extension is not waiting
                    extension.busy = True
            del waiter  # ended by an exception, its traceback would hold this frame, the frame the future: a cycle

    def error(self, identifier: str | None) -> Extension:
        """An extension's ``init/error`` or ``exit/error``: which one it was."""
        return self._find(identifier)

    def _find(self, identifier: str | None) -> Extension:
        if not identifier:
            raise ExtensionApiError("Extension.MissingExtensionIdentifier", "Lambda-Extension-Identifier is required")
        extension = self.extensions.get(identifier)
        if extension is None:
            raise ExtensionApiError("Extension.UnknownExtensionIdentifier", f"unknown extension {identifier}")
        return extension

    # ----------------------------------------------------------------------------------------- engine side
    def close_registration(self) -> None:
        self.registration_open = False

    def invoke(self, *, request_id: str, deadline_ms: int, function_arn: str, trace_id: str) -> None:
        event = {
            "eventType": "INVOKE",
            "deadlineMs": deadline_ms,
            "requestId": request_id,
            "invokedFunctionArn": function_arn,
            "tracing": {"type": "X-Amzn-Trace-Id", "value": trace_id},
        }
        for extension in self.subscribed("INVOKE"):
            extension.deliver(event)

    def shutdown(self, reason: str, deadline_ms: int) -> list[Extension]:
        event = {"eventType": "SHUTDOWN", "shutdownReason": reason, "deadlineMs": deadline_ms}
        targets = self.subscribed("SHUTDOWN")
        for extension in targets:
            extension.deliver(event)
        return targets

    def exited(self, name: str) -> None:
        for extension in self.extensions.values():
            if extension.name == name and extension.external:
                extension.exited = True
        if name in self.launched:
            self._settle(name)
        self._on_ready()

    def _settle(self, name: str) -> None:
        self._settled.add(name)
        if self._settled >= self.launched:
            self.all_registered.set()

    def close(self) -> None:
        for extension in self.extensions.values():
            if extension.waiter is not None and not extension.waiter.done():
                extension.waiter.set_exception(EnvironmentGone("this execution environment is shutting down"))
        self._on_ready = _nothing  # the environment's bound method: dropped, so a stopped environment is freed at once


def _nothing() -> None:
    pass

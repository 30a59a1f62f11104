"""lambda-freeze's engine: functions, execution environments that freeze between invocations, freezer backends.

The names below are imported on first use, so that loading the pytest plugin (or the watchdog) stays cheap.
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

from . import _moved

if TYPE_CHECKING:
    from .config.settings import FunctionConfig, ServerConfig
    from .errors import ConfigError, LambdaFreezeError
    from .harness import LambdaFreeze
    from .server import Emulator

_EXPORTS = {
    "ConfigError": ".errors",
    "Emulator": ".server",
    "FunctionConfig": ".config",
    "LambdaFreeze": ".harness",
    "LambdaFreezeError": ".errors",
    "ServerConfig": ".config",
}
__all__ = ["ConfigError", "Emulator", "FunctionConfig", "LambdaFreeze", "LambdaFreezeError", "ServerConfig"]

_moved.install()  # the old names of modules that moved into engine/, sources/ and config/ still import, and warn


def __getattr__(name: str) -> Any:
    if name not in _EXPORTS:
        raise AttributeError(f"module 'emulator' has no attribute {name!r}")
    return getattr(import_module(_EXPORTS[name], __name__), name)

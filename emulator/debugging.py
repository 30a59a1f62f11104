"""``serve --debug-port PORT [--debug-function NAME]``: which function is debugged, and how its configuration
changes for it (the runtime under a debugger, one environment at a time, since only one can listen on the port)."""

from __future__ import annotations

import dataclasses
import logging

from .config.settings import NODE_RUNTIMES, PYTHON_RUNTIMES, ServerConfig
from .engine.debugger import attach_hint
from .errors import ConfigError

log = logging.getLogger("lambda_freeze.debugger")


def with_debugger(config: ServerConfig, port: int | None, function: str | None) -> ServerConfig:
    if port is None:
        raise ConfigError("--debug-function needs --debug-port PORT (where the debugger listens)")
    names = [f.name for f in config.functions]
    if function is None:
        if len(names) != 1:
            raise ConfigError(f"--debug-port: name the function to debug with --debug-function ({', '.join(names)})")
        function = names[0]
    if function not in names:
        raise ConfigError(f"--debug-function {function}: no such function; served: {', '.join(names)}")
    functions = []
    for fn in config.functions:
        if fn.name == function:
            if fn.runtime not in (*PYTHON_RUNTIMES, *NODE_RUNTIMES):
                raise ConfigError(f"--debug-port: {fn.runtime} has no debugger here (Python and Node.js runtimes do)")
            # One environment: a second could not listen on the same port.
            fn = dataclasses.replace(fn, debug_port=port, reserved_concurrency=1, prewarm=min(fn.prewarm, 1))
            log.info("%s", attach_hint(fn))
        functions.append(fn)
    return config.replace(functions=tuple(functions))

"""What a function needs before its first environment starts: its runtime's own environment (installed on first
use) and its dependencies' build; done once per function, off the event loop, with a progress line for each step
that takes time."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence

from ..config.settings import NODE_RUNTIMES, PYTHON_RUNTIMES, FunctionConfig
from . import dependencies, lambda_paths, python_runtime
from .dependencies import BuildFailed

log = logging.getLogger("lambda_freeze.prepare")  # its progress lines show at the default log level


def prepare(config: FunctionConfig, *, probe_paths: bool = True) -> None:
    """Install ``config``'s runtime and build its dependencies unless both are current; for Node.js, check the
    ``node`` and the runtime client. Raises ConfigError when the runtime cannot be had (no interpreter, the wrong
    Node.js: the message names it and how to install it), BuildFailed with pip's message when the dependencies
    cannot be built.

    ``probe_paths`` False (serve's start) leaves the mount probe, a child process, to whatever needs its answer
    first after serving has begun (the function's standby, its first environment's preparation), unless a message
    here needs it (layers, a debugger)."""
    # Tried off the loop, before any environment starts: the probe's one log line says what the kernel allows.
    if probe_paths and lambda_paths.wanted(config):
        lambda_paths.available()
    if config.lambda_paths and config.debug_port is not None and lambda_paths.available():
        log.info("function %s is debugged at its real paths (its code in %s, not /var/task; its layers in their own "
                 "directories, not /opt), so that breakpoints set in the files you edit are hit", config.name,
                 config.code_dir)
    if config.layers and not (lambda_paths.wanted(config) and lambda_paths.available()):
        log.info("function %s: layers are used from their own directories, not mounted at /opt: %s", config.name,
                 ", ".join(map(str, config.layers)))
    if config.runtime in NODE_RUNTIMES:  # the right Node.js major, and a runtime client it can load
        from . import node_dependencies, node_ric  # loaded only for a Node.js function

        node_ric.command(config.runtime, config.code_dir, config.handler)
        if config.build:
            node_dependencies.build(config.code_dir, config.runtime, progress=log.info)
        return
    if config.runtime not in PYTHON_RUNTIMES:
        return
    if not python_runtime.installed(config.runtime):
        python_runtime.install(config.runtime, progress=log.info)
    python_runtime.executable(config.runtime)  # can it run the runtime client?
    if config.build:
        dependencies.build(config.code_dir, config.runtime, progress=log.info)


async def prepare_async(config: FunctionConfig, *, probe_paths: bool = True) -> None:
    await asyncio.to_thread(prepare, config, probe_paths=probe_paths)


async def prepare_all(functions: Sequence[FunctionConfig]) -> list[FunctionConfig]:
    """Prepare each function; those whose dependencies fail to build are left out, with pip's message. A runtime
    that cannot be had (no interpreter) raises ConfigError: serving without it would only fail at the first invoke."""
    served = []
    for config in functions:
        try:
            await prepare_async(config, probe_paths=False)  # serving does not wait for the mount probe
        except BuildFailed as exc:
            log.error("function %s is not served: %s", config.name, exc.message)
            continue
        served.append(config)
    return served

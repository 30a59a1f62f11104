"""A debugger for one function (``serve --debug-port PORT``): Python runtimes start under debugpy, waiting for the
IDE to attach; Node.js under ``--inspect-brk``. The function's timeouts (INIT's and the invocation's) are suspended
while it is debugged, since a paused handler would otherwise time out; it still freezes between invocations."""

from __future__ import annotations

import importlib.util
import logging
import os
from pathlib import Path

from ..config.settings import NODE_RUNTIMES, PYTHON_RUNTIMES, FunctionConfig
from ..errors import ConfigError

log = logging.getLogger("lambda_freeze.debugger")

DEBUG_HOST = "127.0.0.1"  # the debugger listens on loopback only: whoever reaches it runs code in the function


def debugpy_dir() -> Path:
    """A folder holding debugpy alone (a link to the installed package), to put on a runtime's PYTHONPATH: the
    function then sees debugpy and nothing else of the emulator's packages, whichever interpreter runs it."""
    spec = importlib.util.find_spec("debugpy")
    if spec is None or spec.origin is None:
        raise ConfigError("--debug-port needs debugpy: pip install debugpy (constraints.txt pins it)")
    package = Path(spec.origin).parent
    import debugpy

    folder = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "lambda-freeze" / "debugpy"
    folder /= debugpy.__version__
    link = folder / "debugpy"
    if not (link.is_symlink() and link.resolve() == package.resolve()):
        folder.mkdir(parents=True, exist_ok=True)
        temporary = folder / f".debugpy.{os.getpid()}"
        temporary.unlink(missing_ok=True)
        temporary.symlink_to(package, target_is_directory=True)
        temporary.replace(link)  # atomic: two emulators starting together both end with a good link
    return folder


def python_environment(env: dict[str, str]) -> dict[str, str]:
    """The runtime's environment with debugpy importable: the one change debugging makes to a Python runtime's
    environment, kept here so that it follows wherever the runtime's interpreter comes from."""
    paths = [env["PYTHONPATH"]] if env.get("PYTHONPATH") else []
    return {**env, "PYTHONPATH": os.pathsep.join([*paths, str(debugpy_dir())])}


def command(config: FunctionConfig, argv: list[str]) -> list[str]:
    """The runtime's command line, started under the debugger when the function is debugged."""
    port = config.debug_port
    if port is None:
        return argv
    if config.runtime in PYTHON_RUNTIMES:
        # [python, -m, awslambdaric, handler] -> [python, -m, debugpy, --listen, ..., -m, awslambdaric, handler]
        if argv[1:3] != ["-m", "awslambdaric"]:
            raise ConfigError(f"--debug-port: unexpected Python runtime command {argv}")
        # Frozen modules off: with them, the debugger can miss breakpoints (and says so at every start).
        listen = ["-m", "debugpy", "--listen", f"{DEBUG_HOST}:{port}", "--wait-for-client"]
        return [argv[0], "-Xfrozen_modules=off", *listen, *argv[1:]]
    if config.runtime in NODE_RUNTIMES:
        return [argv[0], f"--inspect-brk={DEBUG_HOST}:{port}", *argv[1:]]
    raise ConfigError(f"--debug-port: runtime {config.runtime} has no debugger here (Python and Node.js do)")


def environment(config: FunctionConfig, env: dict[str, str]) -> dict[str, str]:
    if config.debug_port is not None and config.runtime in PYTHON_RUNTIMES:
        return python_environment(env)
    return env


def attach_hint(config: FunctionConfig) -> str:
    where = f"{DEBUG_HOST}:{config.debug_port}"
    if config.runtime in PYTHON_RUNTIMES:
        how = f"attach a Python debugger (VS Code: debugpy, \"connect\") to {where}"
    else:
        how = f"attach a Node.js debugger (VS Code: \"node\", \"attach\"; chrome://inspect) to {where}"
    return f"{config.name}: {how}; its runtime waits for it, and its timeouts are suspended while it is debugged"

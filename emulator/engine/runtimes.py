"""How each runtime is launched: its command line and Lambda's reserved environment variables."""

from __future__ import annotations

import os
import secrets
import sys
from datetime import UTC, datetime
from pathlib import Path

from ..config import layers
from ..config.settings import NODE_RUNTIMES, PYTHON_RUNTIMES, FunctionConfig
from ..errors import ConfigError
from . import debugger, dependencies, python_runtime

# Lambda's PATH, with the host's after it so a local interpreter and tools are found.
_LAMBDA_PATH = "/usr/local/bin:/usr/bin/:/bin:/opt/bin"


def command(config: FunctionConfig) -> list[str]:
    if config.runtime in PYTHON_RUNTIMES:
        return debugger.command(
            config, [python_runtime.executable(config.runtime), "-m", "awslambdaric", config.handler]
        )
    if config.runtime in NODE_RUNTIMES:
        from . import node_ric  # loaded only for a Node.js function

        return debugger.command(config, node_ric.command(config.runtime, config.code_dir, config.handler))
    return debugger.command(config, [str(config.code_dir / "bootstrap")])


def bootstrap_problem(config: FunctionConfig) -> str | None:
    """Why a ``provided`` or Node.js function cannot start (Lambda's ``Runtime.InvalidEntrypoint``), or None."""
    if config.runtime in PYTHON_RUNTIMES:  # an interpreter to build the runtime's environment with, at least
        if python_runtime.installed(config.runtime):
            return None
        try:
            python_runtime.find_interpreter(config.runtime)
        except ConfigError as exc:
            return exc.message
        return None
    if config.runtime in NODE_RUNTIMES:  # no Node, or no client: the message names the command that installs it
        from . import node_ric

        try:
            node_ric.command(config.runtime, config.code_dir, config.handler)
        except ConfigError as exc:
            return exc.message
        return None
    bootstrap = config.code_dir / "bootstrap"
    if not bootstrap.is_file():
        return f"Couldn't find valid bootstrap(s): [{bootstrap}]"
    if not os.access(bootstrap, os.X_OK):
        return f"bootstrap {bootstrap} is not executable (chmod +x)"
    return None


def log_stream_name(version: str = "$LATEST") -> str:
    return f"{datetime.now(UTC):%Y/%m/%d}/[{version}]{secrets.token_hex(16)}"


def environment(
    config: FunctionConfig,
    *,
    runtime_api: str,
    initialization_type: str = "on-demand",
    extra: dict[str, str] | None = None,
) -> dict[str, str]:
    """The process environment Lambda gives a runtime: the function's own variables, then the reserved set.

    Nothing else of the emulator's environment leaks in except ``PATH`` (after Lambda's) and ``LANG``. A Python
    function's ``python3`` is its runtime's interpreter, not the emulator's.
    """
    return completed_environment(
        config, base_environment(config), runtime_api=runtime_api, initialization_type=initialization_type, extra=extra
    )


def completed_environment(
    config: FunctionConfig,
    base: dict[str, str],
    *,
    runtime_api: str,
    initialization_type: str = "on-demand",
    extra: dict[str, str] | None = None,
) -> dict[str, str]:
    """``environment`` from its part that depends on the function's settings alone (``base_environment``, which a
    standby computes ahead of need), completed with what only the environment itself knows."""
    env = dict(base)
    env["AWS_LAMBDA_INITIALIZATION_TYPE"] = initialization_type
    env["AWS_LAMBDA_RUNTIME_API"] = runtime_api
    env.update(extra or {})
    return debugger.environment(config, env)


def base_environment(config: FunctionConfig) -> dict[str, str]:
    """``environment`` without the Runtime API's address, the initialization type and the environment's extra
    variables: the function's settings alone decide it (a log stream name of its own included)."""
    env = dict(config.env)
    host_path = os.environ.get("PATH", "")
    # A layer's bin/ and lib/ where Lambda has /opt/bin and /opt/lib (the code's lib/ first, as /var/task/lib).
    lambda_path = _LAMBDA_PATH.replace("/opt/bin", ":".join([*map(str, layers.bin_paths(config.layers)), "/opt/bin"]))
    libraries = [str(config.code_dir / "lib"), *map(str, layers.lib_paths(config.layers)), "/opt/lib"]
    if config.runtime in PYTHON_RUNTIMES:
        python_dir = str(python_runtime.venv_python(config.runtime).parent)
    else:
        python_dir = str(Path(sys.executable).parent)
    env.update(
        {
            "_HANDLER": config.handler,
            "AWS_REGION": config.region,
            "AWS_DEFAULT_REGION": config.region,
            "AWS_EXECUTION_ENV": f"AWS_Lambda_{config.runtime}",
            "AWS_LAMBDA_FUNCTION_NAME": config.name,
            "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": str(config.memory_mb),
            "AWS_LAMBDA_FUNCTION_VERSION": "$LATEST",
            "AWS_LAMBDA_LOG_GROUP_NAME": f"/aws/lambda/{config.name}",
            "AWS_LAMBDA_LOG_STREAM_NAME": log_stream_name(),
            "AWS_ACCESS_KEY_ID": "lambda-freeze-local",
            "AWS_SECRET_ACCESS_KEY": "lambda-freeze-local",
            "AWS_SESSION_TOKEN": "lambda-freeze-local",
            "LAMBDA_TASK_ROOT": str(config.code_dir),
            "LAMBDA_RUNTIME_DIR": str(Path(__file__).parents[1]),
            "TZ": ":UTC",
            "LANG": "en_US.UTF-8",
            "PATH": ":".join(p for p in (lambda_path, python_dir, host_path) if p),
        }
    )
    env.setdefault("LD_LIBRARY_PATH", ":".join(libraries))  # a function may set its own, as on Lambda
    if config.runtime in PYTHON_RUNTIMES:  # the code, then its dependencies' build: /var/task on Lambda holds both
        build = dependencies.built(config.code_dir, config.runtime) if config.build else None
        version = config.runtime.removeprefix("python")
        path = [config.code_dir, build, *layers.python_paths(config.layers, version)]
        env["PYTHONPATH"] = ":".join(str(p) for p in path if p is not None)
    if config.runtime in NODE_RUNTIMES and "NODE_PATH" not in config.env:
        from . import node_dependencies, node_ric

        major = int(config.runtime.removeprefix("nodejs").removesuffix(".x"))
        from_layers = [str(p) for p in layers.node_paths(config.layers, major)]
        modules = node_dependencies.built(config.code_dir, config.runtime) if config.build else None
        from_build = [str(modules)] if modules is not None else []
        env["NODE_PATH"] = ":".join([*from_layers, *from_build, node_ric.node_path(config.code_dir)])
    return env

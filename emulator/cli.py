"""The ``lambda-freeze`` command: ``serve`` functions behind the Invoke API, ``invoke`` one of them."""

from __future__ import annotations

import argparse
import asyncio
import base64
import dataclasses
import json
import logging
import signal
import sys
from pathlib import Path
from typing import Any

from .config.overrides import (
    apply_overlay,
    config_overlays,
    declared_variables,
    environment,
    parameter_overrides,
    read_env_file,
    read_env_vars,
)
from .config.settings import (
    DEFAULT_MEMORY_MB,
    DEFAULT_TIMEOUT_S,
    FILE_KEYS,
    INIT_TIMEOUT_S,
    PYTHON_RUNTIMES,
    RUNTIMES,
    FunctionConfig,
    ServerConfig,
    parse_env_pairs,
)
from .engine.freezer import CHOICES
from .engine.timeline import RECENT_EVENTS, Timeline
from .errors import LambdaFreezeError
from .server import Emulator

log = logging.getLogger("lambda_freeze")


def _parser(command: str | None = "repro") -> argparse.ArgumentParser:
    """The command line; ``repro``'s own arguments (and the scenario package they need) only when ``command`` is
    repro, so that starting ``serve`` does not load it."""
    parser = argparse.ArgumentParser(
        prog="lambda-freeze",
        description="A local AWS Lambda execution environment that freezes runtimes between invocations.",
    )
    parser.add_argument("-v", "--verbose", action="count", default=0, help="more emulator logging (-vv: debug)")
    sub = parser.add_subparsers(dest="command", required=True)

    serve = sub.add_parser("serve", help="serve functions behind the Lambda Invoke API")
    serve.add_argument("--config", type=Path, help="TOML file with [server] and [functions.NAME] tables")
    serve.add_argument("--template", type=Path, help="SAM template: serve its AWS::Serverless::Function resources")
    serve.add_argument("--trace", type=Path, help="on exit, write the timeline here (Chrome trace event format)")
    serve.add_argument("--code-dir", type=Path, help="the function's code directory (LAMBDA_TASK_ROOT)")
    serve.add_argument("--handler", help="module.function for Python runtimes; passed as _HANDLER to any runtime")
    serve.add_argument("--runtime", choices=RUNTIMES, default="python3.11")
    serve.add_argument("--name", default="function", help="function name (default: function)")
    serve.add_argument("--timeout", type=float, default=DEFAULT_TIMEOUT_S, help="function timeout, seconds")
    serve.add_argument("--memory", type=int, default=DEFAULT_MEMORY_MB, help="memory size, MB")
    serve.add_argument("--init-timeout", type=float, default=INIT_TIMEOUT_S, help="INIT limit, seconds (Lambda: 10)")
    serve.add_argument("--env", action="append", metavar="K=V", help="variable of every function (repeatable)")
    serve.add_argument("--parameter-overrides", nargs="+", metavar="K=V", help="template parameters, as sam's")
    serve.add_argument("--env-vars", type=Path, metavar="FILE",
                       help="SAM's JSON file of variables: Parameters (all functions) and one map per function")
    serve.add_argument("--env-file", type=Path, metavar="FILE", help="a dotenv file of variables for every function")
    serve.add_argument("--layer", action="append", type=Path, metavar="DIR",
                       help="a layer directory (python/, nodejs/, bin/, lib/, extensions/), in /opt order (repeatable)")
    lifetime = serve.add_argument_group("concurrency, lifetime, asynchronous invocation (of the --code-dir function)")
    for flag, kind, text in _FUNCTION_OPTIONS:
        if kind is bool:
            lifetime.add_argument(f"--{flag}", action="store_true", default=None, help=text)
        else:
            lifetime.add_argument(f"--{flag}", type=kind, help=text)
    lifetime.add_argument("--no-reset-on-timeout", action="store_true", help="freeze a timed-out environment, reuse it")
    serve.add_argument("--account-concurrency", type=int, help="environments across all functions (default 1000)")
    serve.add_argument("--state-dir", type=Path, help="keep async failures and undelivered events here")
    serve.add_argument("--freezer", choices=CHOICES, help="auto (default) | cgroup2 | cgroup1 | sigstop | none")
    serve.add_argument("--no-build", action="store_true", help="run code directories as they are (no requirements.txt)")
    serve.add_argument("--python-executable", action="append", metavar="RUNTIME=PATH",
                       help="the interpreter of a Python runtime, e.g. python3.12=/opt/py312/bin/python3 (repeatable)")
    serve.add_argument("--host", help="Invoke API address (default 127.0.0.1)")
    serve.add_argument("--port", type=int, help="Invoke API port (default 8080; 0 picks a free one)")

    invoke = sub.add_parser("invoke", help="invoke a function served by lambda-freeze")
    invoke.add_argument("name")
    invoke.add_argument("--payload", default="{}", help="JSON event (default {})")
    invoke.add_argument("--endpoint", default="http://127.0.0.1:8080", help="Invoke API URL")
    invoke.add_argument("--log-tail", action="store_true", help="print the last 4 KB of the invocation's log")

    repro = sub.add_parser("repro", help="replay a bug-report scenario file N times and report how often it failed")
    if command == "repro":
        from .scenario import add_arguments as add_repro_arguments

        add_repro_arguments(repro)

    scenario = sub.add_parser("scenario", help="write scenario files")
    scenario_sub = scenario.add_subparsers(dest="scenario_command", required=True)
    from_logs = scenario_sub.add_parser("from-logs", help="turn a function's CloudWatch logs into a scenario")
    if command == "scenario":
        from .scenario.logs.command import add_arguments as add_from_logs_arguments

        add_from_logs_arguments(from_logs)

    runtime = sub.add_parser("install-runtime", help="build Python runtimes' environments (awslambdaric, boto3)")
    runtime.add_argument("runtimes", nargs="*", metavar="RUNTIME", help="python3.9 ... python3.14")
    runtime.add_argument("--all-found", action="store_true", help="every Python runtime whose interpreter is found")
    runtime.add_argument("--force", action="store_true", help="rebuild even when the cached environment is current")
    runtime.add_argument("--python-executable", action="append", metavar="RUNTIME=PATH", help="the interpreter to use")

    build = sub.add_parser("build", help="install code directories' requirements.txt into their cached builds")
    build.add_argument("code_dirs", nargs="+", type=Path, metavar="CODE_DIR")
    build.add_argument("--runtime", choices=PYTHON_RUNTIMES, default="python3.11")

    ric = sub.add_parser("install-node-ric", help="build the Node.js runtime client (aws-lambda-ric) into its cache")
    ric.add_argument("--force", action="store_true", help="rebuild even when the cached build is current")
    return parser


# Options of the --code-dir function beyond the basic ones: (flag, type, help); each is a config file key too.
_FUNCTION_OPTIONS: list[tuple[str, Any, str]] = [
    ("reserved-concurrency", int, "at most N environments; beyond, 429 TooManyRequestsException"),
    ("placement", str, "which idle environment serves: mru (default) | lru | random"),
    ("idle-timeout", float, "recycle an environment idle this many seconds"),
    ("max-age", float, "recycle an environment this many seconds old"),
    ("max-invocations", int, "recycle an environment after N invocations"),
    ("recycle-jitter", float, "randomise the recycling values by ± this fraction"),
    ("prewarm", int, "initialise N environments at start (proactive INIT)"),
    ("replace-before-retire", bool, "run INIT of a replacement beside an environment before retiring it"),
    ("maximum-retry-attempts", int, "async: retries after a function error, 0-2 (default 2)"),
    ("maximum-event-age", float, "async: seconds an event may wait (default 21600)"),
    ("retry-delays", str, "async: comma-separated seconds before each retry (default 60,120)"),
    ("detect-leaks", bool, "flag responses and logs carrying an earlier invocation's event values"),
]


def _server_config(args: argparse.Namespace) -> ServerConfig:
    functions = []
    if args.code_dir is not None:
        settings: dict[str, Any] = {}
        for flag, _, _ in _FUNCTION_OPTIONS:
            value = getattr(args, flag.replace("-", "_"))
            if value is not None:
                field_name, parse = FILE_KEYS[flag.replace("-", "_")]
                settings[field_name] = parse(value)
        if args.no_reset_on_timeout:
            settings["reset_on_timeout"] = False
        functions.append(
            FunctionConfig(
                name=args.name,
                code_dir=args.code_dir.resolve(),
                handler=args.handler or "",
                runtime=args.runtime,
                timeout_s=args.timeout,
                memory_mb=args.memory,
                env={**(read_env_file(args.env_file) if args.env_file else {}), **parse_env_pairs(args.env)},
                init_timeout_s=args.init_timeout,
                layers=tuple(layer.resolve() for layer in args.layer or ()),
                **settings,
            )
        )
    if args.template is not None:
        from .config.sam import functions_from_template

        overlay = _template_overlay(args)
        functions.extend(functions_from_template(args.template, parameter_overrides(args.parameter_overrides),
                                                 overlay))
        if overlay.unused:  # a table without code_dir that matches no function would otherwise vanish
            raise LambdaFreezeError(f"{args.config}: [functions.{sorted(overlay.unused)[0]}] has no code_dir and "
                                    f"names no function of {args.template}: give code_dir, or use the function's "
                                    "logical id or FunctionName")
    if args.template is None:  # nothing would take them: said, not dropped
        for option, value in (("--parameter-overrides", args.parameter_overrides), ("--env-vars", args.env_vars)):
            if value:
                log.warning("%s is not honoured: it applies to the functions of a --template", option)
    if args.code_dir is None and args.config is None and args.template is None:
        raise LambdaFreezeError("serve needs --code-dir DIR --handler MOD.FN, --config FILE or --template FILE")
    config = ServerConfig.load(
        file=args.config,
        cli={
            "host": args.host,
            "port": args.port,
            "freezer": args.freezer,
            "account_concurrency": args.account_concurrency,
            "state_dir": args.state_dir,
            "functions": functions,
            "overlays": args.template is not None,
        },
    )
    if not config.functions:
        raise LambdaFreezeError("no function to serve: the config file or template defines none")
    if args.no_build:  # every function, whichever file or option defined it
        config = config.replace(functions=tuple(dataclasses.replace(f, build=False) for f in config.functions))
    return config


def _template_overlay(args: argparse.Namespace) -> Any:
    """The command line's variables over each template function's (``--env-vars``, ``--env-file``, ``--env``)."""
    env_vars = read_env_vars(args.env_vars) if args.env_vars else {}
    env_file = read_env_file(args.env_file) if args.env_file else {}
    env = parse_env_pairs(args.env)
    from_file = config_overlays(args.config) if args.config else {}
    unused = set(from_file)

    def overlay(template: Any, logical_id: str, function: FunctionConfig) -> FunctionConfig:
        for key in (logical_id, function.name):
            if key in from_file:
                unused.discard(key)
                function = apply_overlay(function, from_file[key], base_dir=args.config.parent.resolve(),
                                         where=f"{args.config}: [functions.{key}]")
                break
        merged = environment(logical_id=logical_id, name=function.name,
                             declared=declared_variables(template, logical_id), template_env=function.env,
                             env_vars=env_vars, env_file=env_file, env=env)
        return dataclasses.replace(function, env=merged)

    overlay.unused = unused  # type: ignore[attr-defined]
    return overlay


def _python_executables(pairs: list[str] | None) -> None:
    from .engine import python_runtime

    for pair in pairs or []:
        runtime, sep, path = pair.partition("=")
        if not sep or runtime not in PYTHON_RUNTIMES:
            raise LambdaFreezeError(f"--python-executable {pair!r}: expected RUNTIME=PATH (python3.12=/bin/python3)")
        python_runtime.set_interpreter(runtime, path)


def _runtimes_found() -> list[str]:
    from .engine import python_runtime

    found = []
    for runtime in PYTHON_RUNTIMES:
        try:
            python_runtime.find_interpreter(runtime)
        except LambdaFreezeError:
            _progress(f"{runtime}: no interpreter on this machine, not installed")
            continue
        found.append(runtime)
    return found


def _progress(line: str) -> None:
    print(f"lambda-freeze: {line}", file=sys.stderr, flush=True)


def _timeline(trace: Path | None) -> Timeline:
    """The whole history when it is written on exit; else only recent events, so memory stays flat."""
    return Timeline() if trace is not None else Timeline(RECENT_EVENTS)


async def _serve(config: ServerConfig, trace: Path | None = None) -> None:
    emulator = Emulator(config, timeline=_timeline(trace))
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    await emulator.start()
    try:
        names = ", ".join(emulator.functions)
        print(
            f"lambda-freeze: serving {names} on {emulator.endpoint_url} (freezer: {emulator.freezer.name})",  # type: ignore[union-attr]
            file=sys.stderr,
            flush=True,
        )
        await stop.wait()
        print("lambda-freeze: stopping", file=sys.stderr, flush=True)
    finally:
        await emulator.stop()
        if trace is not None:
            from .engine.trace import write_chrome_trace

            write_chrome_trace(emulator.timeline, trace)
            print(f"lambda-freeze: timeline written to {trace}", file=sys.stderr, flush=True)


def _new_loop() -> asyncio.AbstractEventLoop:
    import uvloop

    return uvloop.new_event_loop()


def _invoke(args: argparse.Namespace) -> int:
    import urllib.error
    import urllib.request

    url = f"{args.endpoint.rstrip('/')}/2015-03-31/functions/{args.name}/invocations"
    headers = {"Content-Type": "application/json"}
    if args.log_tail:
        headers["X-Amz-Log-Type"] = "Tail"
    request = urllib.request.Request(url, data=args.payload.encode(), headers=headers, method="POST")
    try:
        with urllib.request.urlopen(request) as response:
            body = response.read()
            function_error = response.headers.get("X-Amz-Function-Error")
            log_result = response.headers.get("X-Amz-Log-Result")
    except urllib.error.HTTPError as exc:
        print(f"{exc.code} {exc.headers.get('x-amzn-ErrorType', '')}: {exc.read().decode()}", file=sys.stderr)
        return 1
    except urllib.error.URLError as exc:
        print(f"cannot reach {args.endpoint}: {exc.reason} (is `lambda-freeze serve` running?)", file=sys.stderr)
        return 1
    if log_result:
        sys.stderr.write(base64.b64decode(log_result).decode("utf-8", "replace"))
    sys.stdout.write(body.decode("utf-8", "replace") + "\n")
    if function_error:
        print(f"function error: {function_error}", file=sys.stderr)
        return 1
    return 0


def main(argv: list[str] | None = None) -> int:
    words = sys.argv[1:] if argv is None else argv
    args = _parser(next((word for word in words if not word.startswith("-")), None)).parse_args(argv)
    level = logging.WARNING if args.verbose == 0 else logging.INFO if args.verbose == 1 else logging.DEBUG
    logging.basicConfig(level=level, format="lambda-freeze %(levelname)s %(name)s: %(message)s")
    logging.getLogger("lambda_freeze.freezer").setLevel(min(level, logging.INFO))
    logging.getLogger("lambda_freeze.prepare").setLevel(min(level, logging.INFO))
    try:
        if args.command == "serve":
            _python_executables(args.python_executable)
            config = _server_config(args)
            with asyncio.Runner(loop_factory=_new_loop) as runner:
                runner.run(_serve(config, args.trace))
            return 0
        if args.command == "repro":
            from .scenario import run as run_scenario

            return run_scenario(args)
        if args.command == "scenario":
            from .scenario.logs.command import run as from_logs

            return from_logs(args)
        if args.command == "invoke":
            json.loads(args.payload)
            return _invoke(args)
        if args.command == "install-runtime":
            from .engine import python_runtime

            _python_executables(args.python_executable)
            for name in args.runtimes or (_runtimes_found() if args.all_found else []):
                print(python_runtime.install(name, force=args.force, progress=_progress))
            return 0
        if args.command == "build":
            from .engine import dependencies, python_runtime

            python_runtime.install(args.runtime, progress=_progress)
            for code_dir in args.code_dirs:
                built = dependencies.build(code_dir.resolve(), args.runtime, progress=_progress)
                print(built or f"{code_dir}: no {dependencies.REQUIREMENTS}, nothing to build")
            return 0
        if args.command == "install-node-ric":
            from .engine import node_ric

            print(node_ric.install(force=args.force))
            return 0
    except LambdaFreezeError as exc:
        print(f"lambda-freeze: {exc.message}", file=sys.stderr)
        return 2
    except json.JSONDecodeError as exc:
        print(f"lambda-freeze: --payload is not JSON: {exc}", file=sys.stderr)
        return 2
    return 2


if __name__ == "__main__":
    sys.exit(main())

"""The ``lambda-freeze`` command: ``serve`` functions behind the Invoke API, ``invoke`` one of them."""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import logging
import signal
import sys
from pathlib import Path
from typing import Any

from .config import function_options
from .config.http_routes import DEFAULT_API_PORT
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
    INIT_TIMEOUT_S,
    PYTHON_RUNTIMES,
    RUNTIMES,
    FunctionConfig,
    ServerConfig,
    parse_env_pairs,
)
from .debugging import with_debugger
from .engine.freezer import CHOICES
from .engine.timeline import RECENT_EVENTS, Timeline
from .errors import LambdaFreezeError
from .server import Emulator

log = logging.getLogger("lambda_freeze")


def _parser(command: str | None = "repro") -> argparse.ArgumentParser:
    """The command line; the arguments of ``repro``, ``scenario``, ``generate-event`` and ``invoke`` (and the modules
    they need) only when ``command`` names that command, so that starting ``serve`` does not load them."""
    parser = argparse.ArgumentParser(
        prog="lambda-freeze",
        description="A local AWS Lambda execution environment that freezes runtimes between invocations.",
    )
    parser.add_argument("-v", "--verbose", action="count", default=0, help="more emulator logging (-vv: debug)")
    parser.add_argument("--version", action=_Version, nargs=0, help="show the version and exit")
    sub = parser.add_subparsers(dest="command", required=True)

    serve = sub.add_parser("serve", help="serve functions behind the Lambda Invoke API", formatter_class=_Defaults)
    serve.add_argument("--config", type=Path, help="TOML file with [server] and [functions.NAME] tables")
    serve.add_argument("--template", type=Path, help="SAM template: serve its AWS::Serverless::Function resources")
    serve.add_argument("--trace", type=Path, help="on exit, write the timeline here (Chrome trace event format)")
    serve.add_argument("--code-dir", type=Path, help="the function's code directory (LAMBDA_TASK_ROOT)")
    serve.add_argument("--handler", help="module.function for Python runtimes; passed as _HANDLER to any runtime")
    serve.add_argument("--runtime", choices=RUNTIMES, help="the function's runtime (default: python3.11)")
    serve.add_argument("--name", help="function name (default: function)")
    scoped = serve.add_argument_group(
        "function options: for every function served (of --code-dir, --config or --template), or, after "
        "--function NAME, for that function alone (--function orders --timeout 10 --function billing --memory 512)")
    scoped.add_argument("--function", action=function_options.ScopeAction, metavar="NAME", default=argparse.SUPPRESS,
                        help="the function options that follow apply to NAME (a function name or logical id) only")
    option = function_options.OptionAction
    scoped.add_argument("--timeout", action=option, type=float, default=argparse.SUPPRESS,
                        help=f"function timeout, seconds (default: {DEFAULT_TIMEOUT_S})")
    scoped.add_argument("--memory", action=option, type=int, default=argparse.SUPPRESS,
                        help=f"memory size, MB (default: {DEFAULT_MEMORY_MB})")
    scoped.add_argument("--init-timeout", action=option, type=float, default=argparse.SUPPRESS,
                        help=f"INIT limit, seconds (Lambda: {INIT_TIMEOUT_S:g}, the default)")
    scoped.add_argument("--env", action=option, metavar="K=V", default=argparse.SUPPRESS,
                        help="a variable of every function, or of the --function (repeatable)")
    serve.add_argument("--parameter-overrides", nargs="+", metavar="K=V", help="template parameters, as sam's")
    serve.add_argument("--env-vars", type=Path, metavar="FILE",
                       help="SAM's JSON file of variables: Parameters (all functions) and one map per function")
    serve.add_argument("--env-file", type=Path, metavar="FILE", help="a dotenv file of variables for every function")
    serve.add_argument("--layer", action="append", type=Path, metavar="DIR",
                       help="a layer directory (python/, nodejs/, bin/, lib/, extensions/), in /opt order (repeatable)")
    lifetime = serve.add_argument_group("concurrency, lifetime, asynchronous invocation (function options too)")
    for flag, kind, text in _FUNCTION_OPTIONS:
        dest = flag.replace("-", "_")
        if kind is bool:
            lifetime.add_argument(f"--{flag}", action=option, nargs=0, const=True, dest=dest,
                                  default=argparse.SUPPRESS, help=text)
        else:
            lifetime.add_argument(f"--{flag}", action=option, type=kind, dest=dest, default=argparse.SUPPRESS,
                                  help=text)
    lifetime.add_argument("--no-lambda-paths", action=option, nargs=0, const=False, dest="lambda_paths",
                          default=argparse.SUPPRESS, help="run the code and layers from their own directories")
    lifetime.add_argument("--no-reset-on-timeout", action=option, nargs=0, const=False, dest="reset_on_timeout",
                          default=argparse.SUPPRESS, help="freeze a timed-out environment, reuse it")
    serve.add_argument("--account-concurrency", type=int, help="environments across all functions (default 1000)")
    serve.add_argument("--state-dir", type=Path, help="keep async failures and undelivered events here")
    serve.add_argument("--freezer", choices=CHOICES, help="auto (default) | cgroup2 | cgroup1 | sigstop | none")
    serve.add_argument("--no-build", action="store_true", help="run code directories as they are (no requirements.txt)")
    serve.add_argument("--python-executable", action="append", metavar="RUNTIME=PATH",
                       help="the interpreter of a Python runtime, e.g. python3.12=/opt/py312/bin/python3 (repeatable)")
    serve.add_argument("--host", help="Invoke API address (default 127.0.0.1)")
    serve.add_argument("--port", type=int, help="Invoke API port (default 8080; 0 picks a free one)")
    serve.add_argument(
        "--api-port",
        type=int,
        help="HTTP front door port: API routes and function URLs (default 3000 when a function has either; 0: free)",
    )
    http = serve.add_argument_group("HTTP limits (of the Invoke and Runtime APIs; a timeout of 0 is off)")
    http.add_argument("--http-header-timeout", type=float, metavar="S", help="a request head must arrive in S (30)")
    http.add_argument("--http-idle-timeout", type=float, metavar="S", help="close a kept-alive idle connection (75)")
    http.add_argument("--http-body-timeout", type=float, metavar="S", help="at most S between body pieces (60)")
    http.add_argument("--http-max-connections", type=int, metavar="N", help="beyond N: 503 (default 1000)")
    debug = serve.add_argument_group("debugging (one function at a time)")
    debug.add_argument("--debug-port", type=int, help="start the function under a debugger listening on this port")
    debug.add_argument("--debug-function", metavar="NAME", help="the function to debug (when several are served)")
    serve.add_argument(
        "--virtual-time",
        action="store_true",
        help="run every function on a virtual clock: POST /_lambda-freeze/environments/{id}/advance moves a frozen one",
    )
    serve.add_argument(
        "--no-standby",
        dest="standby",
        action="store_false",
        help="make no process ahead of need: each new environment forks its runtime then (by default one process per "
        "function waits, in its cgroups, before its exec)",
    )
    serve.add_argument(
        "--no-reload",
        dest="reload",
        action="store_false",
        help="do not watch the code directories (by default a change retires the function's environments, so the "
        "next invocation starts on the new code)",
    )
    serve.add_argument("--aws-endpoint", help="SQS/S3 endpoint the functions' SDKs reach (default: an embedded one)")

    invoke = sub.add_parser("invoke", help="invoke a function served by lambda-freeze, or run one with --code-dir")
    if command == "invoke":
        from .invoke_command import add_arguments as add_invoke_arguments

        add_invoke_arguments(invoke)

    trigger = sub.add_parser("trigger", help="fire a schedule (FunctionLogicalId.EventName) now")
    trigger.add_argument("schedule")
    trigger.add_argument("--endpoint-url", default="http://127.0.0.1:8080", help="lambda-freeze's Invoke API URL")

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

    generate = sub.add_parser("generate-event", help="print an event as an AWS service sends it (generate-event s3)")
    if command == "generate-event":
        from .generate_event import add_arguments as add_generate_arguments

        add_generate_arguments(generate)

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


class _Defaults(argparse.HelpFormatter):
    """Help that shows each option's default, where it has one its text does not already give."""

    def _get_help_string(self, action: argparse.Action) -> str | None:
        text = action.help or ""
        if action.default in (None, False, argparse.SUPPRESS) or "default" in text or action.option_strings == []:
            return text
        if isinstance(action, argparse._StoreFalseAction):
            return text
        return f"{text} (default: %(default)s)"


class _Version(argparse.Action):
    """``--version``: the installed distribution's version, looked up only when asked (importlib.metadata scans
    every installed distribution, which no other command needs)."""

    def __call__(self, parser: argparse.ArgumentParser, *args: Any, **kwargs: Any) -> None:
        print(f"{parser.prog} {_version()}")
        parser.exit()


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("lambda-freeze")
    except PackageNotFoundError:  # run from a checkout that was never installed
        return "unknown (not installed)"


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
    ("lambda-paths", bool, "the code at /var/task and the layers at /opt, in a private mount namespace where the "
                           "kernel allows one (root): the default; --no-lambda-paths for the real directories"),
]


def _server_config(args: argparse.Namespace) -> ServerConfig:
    functions: list[FunctionConfig] = []
    given = function_options.scopes(args)
    aliases: dict[str, str] = {}  # a template function's name -> its logical id, which --function may name too
    if args.code_dir is not None:
        # Checked here with the options for all functions, so that a bad value names this function's option.
        code_dir_function = FunctionConfig(
            name=args.name or "function",
            code_dir=args.code_dir.resolve(),
            handler=args.handler or "",
            runtime=args.runtime or "python3.11",
            env=read_env_file(args.env_file) if args.env_file else {},
            layers=tuple(layer.resolve() for layer in args.layer or ()),
        )
        functions.extend(function_options.apply([code_dir_function], {k: v for k, v in given.items() if not k}))
    else:  # they describe the --code-dir function alone: said, not dropped
        for option, value in (("--handler", args.handler), ("--runtime", args.runtime), ("--name", args.name),
                              ("--layer", args.layer)):
            if value:
                log.warning("%s is not honoured: it describes the --code-dir function, and there is none", option)
    if args.template is not None:
        from .config.sam import functions_from_template

        overlay = _template_overlay(args)
        aliases = overlay.aliases
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
            "api_port": args.api_port,
            "http_header_timeout_s": args.http_header_timeout,
            "http_idle_timeout_s": args.http_idle_timeout,
            "http_body_timeout_s": args.http_body_timeout,
            "http_max_connections": args.http_max_connections,
            "aws_endpoint": args.aws_endpoint,
            "functions": functions,
            "overlays": args.template is not None,
        },
    )
    if not config.functions:
        raise LambdaFreezeError("no function to serve: the config file or template defines none")
    # The options for all functions reach the config file's and the template's functions too (the --code-dir one
    # has them already: applying them twice changes nothing); then each --function NAME's over its function.
    config = config.replace(functions=function_options.apply(config.functions, given, aliases))
    if config.api_port is None and any(f.routes or f.url for f in config.functions):
        config = config.replace(api_port=DEFAULT_API_PORT)  # as `sam local start-api`
    if args.debug_port is not None or args.debug_function is not None:
        config = with_debugger(config, args.debug_port, args.debug_function)
    if args.no_build:  # every function, whichever file or option defined it
        config = config.replace(functions=tuple(dataclasses.replace(f, build=False) for f in config.functions))
    if not args.standby:  # every function, whichever file or option defined it
        config = config.replace(functions=tuple(dataclasses.replace(f, standby=False) for f in config.functions))
    if args.virtual_time:  # a provided runtime is refused here: its clocks cannot be moved
        config = config.replace(functions=tuple(dataclasses.replace(f, virtual_time=True) for f in config.functions))
    if args.template is not None:
        from .config.sam_events import events_from_template

        config = config.replace(events=config.events.merged(events_from_template(args.template)))
    return config


def _template_overlay(args: argparse.Namespace) -> Any:
    """The command line's variables over each template function's (``--env-vars``, ``--env-file``, ``--env``)."""
    env_vars = read_env_vars(args.env_vars) if args.env_vars else {}
    env_file = read_env_file(args.env_file) if args.env_file else {}
    env = parse_env_pairs(function_options.scopes(args).get(function_options.ALL, {}).get("env"))
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
        aliases[function.name] = logical_id
        return dataclasses.replace(function, env=merged)

    aliases: dict[str, str] = {}
    overlay.unused = unused  # type: ignore[attr-defined]
    overlay.aliases = aliases  # type: ignore[attr-defined]
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


async def _serve(config: ServerConfig, trace: Path | None = None, *, reload: bool = False) -> None:
    emulator = Emulator(config, timeline=_timeline(trace), reload=reload)
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
        if emulator.api_url is not None:
            print(f"lambda-freeze: HTTP front door on {emulator.api_url}", file=sys.stderr, flush=True)
            for function in emulator.front_door.describe(emulator.api_url):
                for route in function["routes"]:
                    print(
                        f"  {route['method']} {emulator.api_url}{route['path']} -> {function['function']}",
                        file=sys.stderr,
                        flush=True,
                    )
                if function["url"]:
                    print(f"  {function['url']} -> {function['function']}", file=sys.stderr, flush=True)
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


def main(argv: list[str] | None = None) -> int:
    words = sys.argv[1:] if argv is None else argv
    args = _parser(next((word for word in words if not word.startswith("-")), None)).parse_args(argv)
    level = logging.WARNING if args.verbose == 0 else logging.INFO if args.verbose == 1 else logging.DEBUG
    logging.basicConfig(level=level, format="lambda-freeze %(levelname)s %(name)s: %(message)s")
    logging.getLogger("lambda_freeze.freezer").setLevel(min(level, logging.INFO))
    logging.getLogger("lambda_freeze.reload").setLevel(min(level, logging.INFO))
    logging.getLogger("lambda_freeze.debugger").setLevel(min(level, logging.INFO))
    logging.getLogger("lambda_freeze.prepare").setLevel(min(level, logging.INFO))
    try:
        if args.command == "serve":
            _python_executables(args.python_executable)
            config = _server_config(args)
            with asyncio.Runner(loop_factory=_new_loop) as runner:
                runner.run(_serve(config, args.trace, reload=args.reload))
            return 0
        if args.command == "repro":
            from .scenario import run as run_scenario

            return run_scenario(args)
        if args.command == "scenario":
            from .scenario.logs.command import run as from_logs

            return from_logs(args)
        if args.command == "invoke":
            from .invoke_command import run as run_invoke

            return run_invoke(args)
        if args.command == "generate-event":
            from .generate_event import run as generate_event

            return generate_event(args)
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
        if args.command == "trigger":
            from .trigger import trigger

            return trigger(args.schedule, args.endpoint_url)
        if args.command == "install-node-ric":
            from .engine import node_ric

            print(node_ric.install(force=args.force))
            return 0
    except LambdaFreezeError as exc:
        print(f"lambda-freeze: {exc.message}", file=sys.stderr)
        return 2
    return 2


if __name__ == "__main__":
    sys.exit(main())

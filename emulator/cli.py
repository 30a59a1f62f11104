"""The ``lambda-freeze`` command: ``serve`` functions behind the Invoke API, ``invoke`` one of them."""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
import logging
import signal
import sys
from pathlib import Path
from typing import Any

from .config.settings import (
    DEFAULT_MEMORY_MB,
    DEFAULT_TIMEOUT_S,
    FILE_KEYS,
    INIT_TIMEOUT_S,
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
    serve.add_argument("--env", action="append", metavar="K=V", help="function environment variable (repeatable)")
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
    serve.add_argument("--host", help="Invoke API address (default 127.0.0.1)")
    serve.add_argument("--port", type=int, help="Invoke API port (default 8080; 0 picks a free one)")
    serve.add_argument("--aws-endpoint", help="SQS/S3 endpoint the functions' SDKs reach (default: an embedded one)")

    invoke = sub.add_parser("invoke", help="invoke a function served by lambda-freeze")
    invoke.add_argument("name")
    invoke.add_argument("--payload", default="{}", help="JSON event (default {})")
    invoke.add_argument("--endpoint", default="http://127.0.0.1:8080", help="Invoke API URL")
    invoke.add_argument("--log-tail", action="store_true", help="print the last 4 KB of the invocation's log")

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
                env=parse_env_pairs(args.env),
                init_timeout_s=args.init_timeout,
                **settings,
            )
        )
    if args.template is not None:
        from .config.sam import functions_from_template

        functions.extend(functions_from_template(args.template))
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
            "aws_endpoint": args.aws_endpoint,
            "functions": functions,
        },
    )
    if not config.functions:
        raise LambdaFreezeError("no function to serve: the config file or template defines none")
    if args.template is not None:
        from .config.sam_events import events_from_template

        config = config.replace(events=config.events.merged(events_from_template(args.template)))
    return config


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
    try:
        if args.command == "serve":
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
    except json.JSONDecodeError as exc:
        print(f"lambda-freeze: --payload is not JSON: {exc}", file=sys.stderr)
        return 2
    return 2


if __name__ == "__main__":
    sys.exit(main())

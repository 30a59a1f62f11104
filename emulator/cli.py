"""The ``lambda-freeze`` command: ``serve`` functions behind the Invoke API, ``invoke`` one of them."""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
import logging
import signal
import sys
import urllib.error
import urllib.request
from pathlib import Path

from .config import (
    DEFAULT_MEMORY_MB,
    DEFAULT_TIMEOUT_S,
    INIT_TIMEOUT_S,
    RUNTIMES,
    FunctionConfig,
    ServerConfig,
    parse_env_pairs,
)
from .errors import LambdaFreezeError
from .freezer import CHOICES
from .server import Emulator

log = logging.getLogger("lambda_freeze")


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="lambda-freeze",
        description="A local AWS Lambda execution environment that freezes runtimes between invocations.",
    )
    parser.add_argument("-v", "--verbose", action="count", default=0, help="more emulator logging (-vv: debug)")
    sub = parser.add_subparsers(dest="command", required=True)

    serve = sub.add_parser("serve", help="serve functions behind the Lambda Invoke API")
    serve.add_argument("--config", type=Path, help="TOML file with [server] and [functions.NAME] tables")
    serve.add_argument("--code-dir", type=Path, help="the function's code directory (LAMBDA_TASK_ROOT)")
    serve.add_argument("--handler", help="module.function for Python runtimes; passed as _HANDLER to any runtime")
    serve.add_argument("--runtime", choices=RUNTIMES, default="python3.11")
    serve.add_argument("--name", default="function", help="function name (default: function)")
    serve.add_argument("--timeout", type=float, default=DEFAULT_TIMEOUT_S, help="function timeout, seconds")
    serve.add_argument("--memory", type=int, default=DEFAULT_MEMORY_MB, help="memory size, MB")
    serve.add_argument("--init-timeout", type=float, default=INIT_TIMEOUT_S, help="INIT limit, seconds (Lambda: 10)")
    serve.add_argument("--env", action="append", metavar="K=V", help="function environment variable (repeatable)")
    serve.add_argument("--freezer", choices=CHOICES, help="auto (default) | cgroup2 | cgroup1 | sigstop | none")
    serve.add_argument("--host", help="Invoke API address (default 127.0.0.1)")
    serve.add_argument("--port", type=int, help="Invoke API port (default 8080; 0 picks a free one)")

    invoke = sub.add_parser("invoke", help="invoke a function served by lambda-freeze")
    invoke.add_argument("name")
    invoke.add_argument("--payload", default="{}", help="JSON event (default {})")
    invoke.add_argument("--endpoint", default="http://127.0.0.1:8080", help="Invoke API URL")
    invoke.add_argument("--log-tail", action="store_true", help="print the last 4 KB of the invocation's log")
    return parser


def _server_config(args: argparse.Namespace) -> ServerConfig:
    functions = []
    if args.code_dir is not None:
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
            )
        )
    elif args.config is None:
        raise LambdaFreezeError("serve needs --code-dir DIR --handler MOD.FN, or --config FILE")
    config = ServerConfig.load(
        file=args.config,
        cli={"host": args.host, "port": args.port, "freezer": args.freezer, "functions": functions},
    )
    if not config.functions:
        raise LambdaFreezeError("no function to serve: the config file defines no [functions.NAME] table")
    return config


async def _serve(config: ServerConfig) -> None:
    emulator = Emulator(config)
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


def _new_loop() -> asyncio.AbstractEventLoop:
    import uvloop

    return uvloop.new_event_loop()


def _invoke(args: argparse.Namespace) -> int:
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
    args = _parser().parse_args(argv)
    level = logging.WARNING if args.verbose == 0 else logging.INFO if args.verbose == 1 else logging.DEBUG
    logging.basicConfig(level=level, format="lambda-freeze %(levelname)s %(name)s: %(message)s")
    logging.getLogger("lambda_freeze.freezer").setLevel(min(level, logging.INFO))
    try:
        if args.command == "serve":
            config = _server_config(args)
            with asyncio.Runner(loop_factory=_new_loop) as runner:
                runner.run(_serve(config))
            return 0
        if args.command == "invoke":
            json.loads(args.payload)
            return _invoke(args)
    except LambdaFreezeError as exc:
        print(f"lambda-freeze: {exc.message}", file=sys.stderr)
        return 2
    except json.JSONDecodeError as exc:
        print(f"lambda-freeze: --payload is not JSON: {exc}", file=sys.stderr)
        return 2
    return 2


if __name__ == "__main__":
    sys.exit(main())

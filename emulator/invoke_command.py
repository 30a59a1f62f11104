"""``lambda-freeze invoke``: call a function served by ``lambda-freeze serve`` (the payload inline, from a file or
from stdin, as the AWS CLI reads it), or run one invocation with no server running (``--code-dir``)."""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
import os
import re
import sys
from pathlib import Path
from typing import Any, BinaryIO

from .engine.logs import readable
from .errors import ConfigError

INVOCATION_TYPES = ("RequestResponse", "Event", "DryRun")


def add_arguments(invoke: argparse.ArgumentParser) -> None:
    invoke.add_argument("name", nargs="?", help="the function's name (with --code-dir: the name it runs under)")
    invoke.add_argument(
        "--payload",
        default="{}",
        help="the JSON event: inline, @FILE or file://FILE (a file), or - (stdin) (default: %(default)s)",
    )
    invoke.add_argument("--invocation-type", choices=INVOCATION_TYPES, default="RequestResponse")
    invoke.add_argument(
        "--endpoint-url",
        "--endpoint",
        dest="endpoint_url",
        help="the Invoke API (default: http://$LAMBDA_FREEZE_HOST:$LAMBDA_FREEZE_PORT, else http://127.0.0.1:8080)",
    )
    invoke.add_argument("--log-tail", action="store_true", help="print the last 4 KB of the invocation's log")
    local = invoke.add_argument_group("without a server (as sam local invoke): one invocation, then everything stops")
    local.add_argument("--code-dir", type=Path, help="run this function's code directly")
    local.add_argument("--handler", help="module.function (with --code-dir)")
    local.add_argument("--runtime", default="python3.11", help="with --code-dir (default: %(default)s)")
    local.add_argument("--timeout", type=float, default=None, help="with --code-dir: seconds (default 3)")
    local.add_argument("--env", action="append", metavar="K=V", help="with --code-dir (repeatable)")


def read_payload(value: str, stdin: BinaryIO | None = None) -> bytes:
    """The event as the AWS CLI takes it: ``-`` is stdin, ``@FILE`` and ``file://FILE`` a file, else the text."""
    if value == "-":
        data = (stdin or sys.stdin.buffer).read()
    elif value.startswith(("@", "file://")):
        path = Path(value[1:] if value.startswith("@") else value.removeprefix("file://")).expanduser()
        try:
            data = path.read_bytes()
        except OSError as exc:
            raise ConfigError(f"--payload {value}: cannot read {path}: {exc.strerror}") from None
    else:
        data = value.encode()
    if not data.strip():
        return b"{}"
    try:
        json.loads(data)
    except ValueError as exc:
        source = "stdin" if value == "-" else value if value.startswith(("@", "file://")) else "--payload"
        raise ConfigError(f"{source} is not JSON: {exc}") from None
    return data


def default_endpoint(environ: dict[str, str] | None = None) -> str:
    """Where ``serve`` listens when started with the same environment (LAMBDA_FREEZE_HOST / _PORT)."""
    environ = dict(os.environ) if environ is None else environ
    host = environ.get("LAMBDA_FREEZE_HOST") or "127.0.0.1"
    if host in ("0.0.0.0", "::"):
        host = "127.0.0.1"  # listening everywhere: reached here on loopback
    port = environ.get("LAMBDA_FREEZE_PORT") or "8080"
    return f"http://{'[' + host + ']' if ':' in host else host}:{port}"


def run(args: argparse.Namespace) -> int:
    payload = read_payload(args.payload)
    if args.code_dir is not None:
        return _run_local(args, payload)
    if not args.name:
        raise ConfigError("invoke needs a function name (or --code-dir DIR --handler MOD.FN to run one directly)")
    return _call(args, payload, args.endpoint_url or default_endpoint())


def _call(args: argparse.Namespace, payload: bytes, endpoint: str) -> int:
    import urllib.error  # here, not at the top: serve imports this module and needs no HTTP client
    import urllib.request

    url = f"{endpoint.rstrip('/')}/2015-03-31/functions/{args.name}/invocations"
    headers = {"Content-Type": "application/json", "X-Amz-Invocation-Type": args.invocation_type}
    if args.log_tail:
        headers["X-Amz-Log-Type"] = "Tail"
    request = urllib.request.Request(url, data=payload, headers=headers, method="POST")
    try:
        with urllib.request.urlopen(request) as response:
            status = response.status
            body = response.read()
            function_error = response.headers.get("X-Amz-Function-Error")
            log_result = response.headers.get("X-Amz-Log-Result")
            request_id = response.headers.get("x-amzn-RequestId", "")
    except urllib.error.HTTPError as exc:
        error_type = exc.headers.get("x-amzn-ErrorType", "")
        print(f"{exc.code} {error_type}: {exc.read().decode()}", file=sys.stderr)
        if error_type == "ResourceNotFoundException":
            served = _served(endpoint)
            if served is not None:
                print(f"functions served at {endpoint}: {', '.join(served) or 'none'}", file=sys.stderr)
        return 1
    except urllib.error.URLError as exc:
        print(f"cannot reach {endpoint}: {exc.reason} (is `lambda-freeze serve` running?)", file=sys.stderr)
        return 1
    if log_result:
        sys.stderr.write(readable(base64.b64decode(log_result).decode("utf-8", "replace")))
    if status != 200:  # Event: 202, queued; DryRun: 204
        print(f"{status}: {'queued as ' + request_id if status == 202 else 'the call would be allowed'}")
        return 0
    sys.stdout.write(body.decode("utf-8", "replace") + "\n")
    if function_error:
        print(f"function error: {function_error}", file=sys.stderr)
        return 1
    return 0


def _served(endpoint: str) -> list[str] | None:
    import urllib.request

    try:
        with urllib.request.urlopen(f"{endpoint.rstrip('/')}/2015-03-31/functions", timeout=5) as response:
            document: dict[str, Any] = json.loads(response.read())
    except (OSError, ValueError):
        return None
    return [str(function["FunctionName"]) for function in document.get("Functions", [])]


def _run_local(args: argparse.Namespace, payload: bytes) -> int:
    """One invocation on an emulator of its own, stopped afterwards; the function's log goes to stderr."""
    from .config.settings import DEFAULT_TIMEOUT_S, FunctionConfig, ServerConfig, parse_env_pairs
    from .engine.logs import StreamSink
    from .server import Emulator

    if args.invocation_type != "RequestResponse":
        raise ConfigError("with --code-dir, the invocation type is RequestResponse (there is no server to queue on)")
    function = FunctionConfig(
        name=args.name or re.sub(r"[^A-Za-z0-9_-]", "-", args.code_dir.resolve().name)[:64] or "function",
        code_dir=args.code_dir.resolve(),
        handler=args.handler or "",
        runtime=args.runtime,
        timeout_s=args.timeout if args.timeout is not None else DEFAULT_TIMEOUT_S,
        env=parse_env_pairs(args.env),
    )
    config = ServerConfig(port=0, functions=(function,))

    async def once() -> tuple[bytes, str | None]:
        from runtime_api import InvokeRequest

        emulator = Emulator(config, sink=StreamSink(sys.stderr))
        await emulator.start()
        try:
            result = await emulator.invoke(InvokeRequest(function.name, None, payload, "RequestResponse", None, None))
            return result.payload, result.function_error
        finally:
            await emulator.stop()

    import uvloop

    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        body, function_error = runner.run(once())
    sys.stdout.write(body.decode("utf-8", "replace") + "\n")
    if function_error:
        print(f"function error: {function_error}", file=sys.stderr)
        return 1
    return 0

"""``lambda-freeze scenario from-logs``: its arguments, and the run from log files to a scenario file."""

from __future__ import annotations

import argparse
import json
import sys
import tomllib
from pathlib import Path
from typing import Any

from ...config import RUNTIMES, parse_env_pairs
from ...errors import LambdaFreezeError
from .lines import LogsError
from .read import read_logs
from .rebuild import rebuild
from .write import Options, scenario


def _positive(text: str) -> float:
    value = float(text)
    if value <= 0:
        raise argparse.ArgumentTypeError("must be more than 0")
    return value


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("logs", type=Path, nargs="+", help="log files: filter-log-events/get-log-events JSON, "
                        "Logs Insights CSV or JSON, a table copied from the CloudWatch console, aws logs tail "
                        "output, or pasted lines")
    parser.add_argument("--function", type=Path, required=True, dest="code_dir", metavar="DIR",
                        help="the function's code directory")
    parser.add_argument("--handler", required=True, help="module.function (Python), file.export (Node.js)")
    parser.add_argument("--runtime", choices=RUNTIMES, default="python3.11")
    parser.add_argument("--env", action="append", metavar="K=V", help="function environment variable (repeatable)")
    parser.add_argument("--name", help="the function's name in the scenario (default: from the log group)")
    parser.add_argument("-o", "--output", type=Path, default=Path("scenario.toml"),
                        help="the scenario file to write (.toml, or .yaml) (default: scenario.toml)")
    parser.add_argument("--events", type=Path, help="payloads: JSON lines, each {\"requestId\": ..., \"event\": ...} "
                        "or one event per invocation in order")
    parser.add_argument("--speed", type=_positive, default=1.0, help="divide the idle gaps by K")
    parser.add_argument("--max-gap", type=_positive, help="cap the idle gaps at S seconds")
    parser.add_argument("--runs", type=int, default=3, help="the scenario's runs (default 3)")
    parser.add_argument("--log-stream", action="append", help="only this log stream (repeatable)")
    parser.add_argument("--function-name", help="only this function's log group, when the logs mix several")
    parser.add_argument("--with", dest="extra", type=Path, metavar="FILE", help="a TOML file whose [databases.*], "
                        "[services.*], freezer and [function] table (upstreams, databases, env, ...) go into the "
                        "scenario")


def _events(path: Path) -> tuple[list[Any], dict[str, Any]]:
    ordered: list[Any] = []
    by_id: dict[str, Any] = {}
    try:
        text = path.read_text()
    except OSError as exc:
        raise LogsError(f"{path}: cannot read it: {exc.strerror}") from None
    for number, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        try:
            value = json.loads(line)
        except json.JSONDecodeError as exc:
            raise LogsError(f"{path}:{number}: not JSON ({exc.msg}): --events holds one JSON value a line") from None
        if isinstance(value, dict) and set(value) == {"requestId", "event"} and isinstance(value["requestId"], str):
            by_id[value["requestId"]] = value["event"]
        else:
            ordered.append(value)
    return ordered, by_id


def _extra(path: Path) -> dict[str, Any]:
    try:
        data = tomllib.loads(path.read_text())
    except OSError as exc:
        raise LogsError(f"{path}: cannot read it: {exc.strerror}") from None
    except tomllib.TOMLDecodeError as exc:
        raise LogsError(f"{path}: not valid TOML: {exc}") from None
    unknown = sorted(set(data) - {"databases", "services", "freezer", "function"})
    if unknown:
        raise LogsError(f"{path}: --with takes databases, services, freezer and function; not {', '.join(unknown)}")
    return data


def run(args: argparse.Namespace) -> int:
    """0 when the scenario was written, 2 when the logs or the options cannot make one."""
    try:
        lines, unread, kinds = read_logs(args.logs)
        rebuilt = rebuild(lines, streams=args.log_stream, function_name=args.function_name)
        ordered, by_id = _events(args.events) if args.events else (None, {})
        options = Options(code_dir=args.code_dir, handler=args.handler, runtime=args.runtime,
                          env=parse_env_pairs(args.env), name=args.name, speed=args.speed, max_gap_s=args.max_gap,
                          runs=args.runs, events=ordered, events_by_id=by_id,
                          extra=_extra(args.extra) if args.extra else {},
                          extra_dir=args.extra.resolve().parent if args.extra else Path("."))
        written = scenario(rebuilt, options, args.output, [str(p) for p in args.logs])
    except LambdaFreezeError as exc:
        print(f"lambda-freeze: {exc.message}", file=sys.stderr)
        return 2
    args.output.write_text(written.text)
    for path, kind in kinds.items():
        print(f"{path}: {kind}", file=sys.stderr)
    invocations = rebuilt.invocations
    print(f"{len(invocations)} invocation(s) on {len(rebuilt.environments)} environment(s), "
          f"{sum(1 for i in invocations if i.outcome != 'ok')} failed; written to {args.output}", file=sys.stderr)
    ignored = unread + rebuilt.ignored
    if ignored:
        shown = ", ".join(ignored[:5]) + (f" and {len(ignored) - 5} more" if len(ignored) > 5 else "")
        print(f"ignored {len(ignored)} line(s) that belong to no invocation: {shown}", file=sys.stderr)
    for note in written.notes:
        print(f"note: {note}", file=sys.stderr)
    return 0

"""``lambda-freeze generate-event SERVICE``: print an event as the AWS service would send it, built by the same
functions that the front door, the event sources and the tests use (``sources/events/``); each builder's keyword
arguments become the command's options."""

from __future__ import annotations

import argparse
import inspect
import json
import sys
import types
import typing
from collections.abc import Callable
from pathlib import Path
from typing import Any

from .errors import ConfigError
from .sources.events import registry


def add_arguments(parser: argparse.ArgumentParser) -> None:
    services = parser.add_subparsers(dest="service", required=True, metavar="SERVICE")
    for service in registry.available():
        build = registry.builder(service)
        summary = (inspect.getdoc(build) or "").split("\n\n")[0]
        sub = services.add_parser(service, help=summary, description=summary)
        for name, kind, default in _parameters(build):
            flag = "--" + name.replace("_", "-")
            if kind is bool:
                sub.add_argument(flag, action=argparse.BooleanOptionalAction, default=default)
            else:
                metavar = "JSON" if kind is _json_value else None
                sub.add_argument(
                    flag, dest=name, type=kind, default=default, metavar=metavar, help="(default: %(default)s)"
                )


def run(args: argparse.Namespace) -> int:
    build = registry.builder(args.service)
    options = {name: getattr(args, name) for name, _, _ in _parameters(build)}
    try:
        event = build(**options)
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"generate-event {args.service}: {exc}") from None
    json.dump(event, sys.stdout, indent=2)
    sys.stdout.write("\n")
    return 0


def _json_value(text: str) -> Any:
    """A JSON option: inline, or @FILE."""
    if text.startswith("@"):
        text = Path(text[1:]).read_text()
    try:
        return json.loads(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"not JSON: {exc}") from None


def _parameters(build: Callable[..., Any]) -> list[tuple[str, Callable[[str], Any] | type[bool], Any]]:
    """(name, how to read it from the command line, default) of each parameter of a builder."""
    hints = typing.get_type_hints(build)
    found: list[tuple[str, Callable[[str], Any] | type[bool], Any]] = []
    for name, parameter in inspect.signature(build).parameters.items():
        found.append((name, _reader(hints.get(name, str)), parameter.default))
    return found


def _reader(hint: Any) -> Callable[[str], Any] | type[bool]:
    options = [arg for arg in typing.get_args(hint) if arg is not type(None)] if _is_union(hint) else [hint]
    kind = options[0] if len(options) == 1 else str
    if kind in (str, int, float, bool):
        return typing.cast(Callable[[str], Any], kind)
    return _json_value  # dicts and lists: JSON


def _is_union(hint: Any) -> bool:
    return typing.get_origin(hint) in (typing.Union, types.UnionType)

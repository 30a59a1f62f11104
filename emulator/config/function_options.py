"""The command line's function options (``--timeout``, ``--memory``, ``--env``, the lifetime options, ...): for
every function served, or, after ``--function NAME``, for that function alone.

``--function orders --timeout 10 --function billing --memory 512``: options before any ``--function`` apply to all
functions (of ``--code-dir``, a config file or a template); after one, to the function of that name (its name or a
template's logical id) until the next ``--function``. A scope that names no function is named in a warning, so that
no option is dropped silently.
"""

from __future__ import annotations

import argparse
import dataclasses
import logging
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from ..errors import ConfigError
from .settings import FILE_KEYS, FunctionConfig, parse_env_pairs

log = logging.getLogger("lambda_freeze.options")

ALL = ""  # the scope of options given before any --function
SCOPES = "function_options"  # the Namespace attribute: {scope: {key: value}}, keys as in a config file's table
_CURRENT = "_function_scope"


class ScopeAction(argparse.Action):
    """``--function NAME``: the options that follow apply to NAME alone."""

    def __call__(self, parser: argparse.ArgumentParser, namespace: argparse.Namespace, values: Any,
                 option_string: str | None = None) -> None:
        setattr(namespace, _CURRENT, str(values))
        _scopes(namespace).setdefault(str(values), {})


class OptionAction(argparse.Action):
    """A function option, stored under the current scope; ``--env`` accumulates, flags store their ``const``."""

    def __call__(self, parser: argparse.ArgumentParser, namespace: argparse.Namespace, values: Any,
                 option_string: str | None = None) -> None:
        scope = _scopes(namespace).setdefault(getattr(namespace, _CURRENT, ALL), {})
        if self.dest == "env":
            scope.setdefault("env", []).append(values)
        else:
            scope[self.dest] = self.const if self.nargs == 0 else values


def _scopes(namespace: argparse.Namespace) -> dict[str, dict[str, Any]]:
    scopes = getattr(namespace, SCOPES, None)
    if scopes is None:
        scopes = {}
        setattr(namespace, SCOPES, scopes)
    return scopes


def scopes(args: argparse.Namespace) -> dict[str, dict[str, Any]]:
    """What the command line gave, by scope (``ALL`` first when present)."""
    return dict(getattr(args, SCOPES, None) or {})


def apply(
    functions: Sequence[FunctionConfig],
    given: Mapping[str, Mapping[str, Any]],
    aliases: Mapping[str, str] | None = None,
) -> tuple[FunctionConfig, ...]:
    """Each function with the options for all functions, then those scoped to its name or its alias (a template's
    logical id) over them. A scope naming no function is warned about with the options it carried."""
    aliases = aliases or {}
    known = {f.name for f in functions} | set(aliases.values())
    for scope, options in given.items():
        if scope == ALL:
            continue
        if scope not in known:
            log.warning("--function %s %s is not honoured: no function is named %s (served: %s)", scope,
                        describe(options) or "(no options)", scope, ", ".join(sorted(f.name for f in functions)))
        elif not options:
            log.warning("--function %s is followed by no function option: it changes nothing", scope)
    result = []
    for function in functions:
        for scope in _scopes_of(function.name, aliases.get(function.name), given):
            function = _with(function, given[scope], scope)
        result.append(function)
    return tuple(result)


def _scopes_of(name: str, alias: str | None, given: Mapping[str, Any]) -> Iterable[str]:
    return [scope for scope in dict.fromkeys((ALL, alias, name)) if scope is not None and scope in given]


def _with(function: FunctionConfig, options: Mapping[str, Any], scope: str) -> FunctionConfig:
    where = "the command line" if scope == ALL else f"--function {scope}"
    changes: dict[str, Any] = {}
    for key, value in options.items():
        if key == "env":
            changes["env"] = {**function.env, **parse_env_pairs(value)}
            continue
        field_name, parse = FILE_KEYS[key]
        try:
            changes[field_name] = parse(value)
        except (TypeError, ValueError) as exc:
            raise ConfigError(f"{where}: --{key.replace('_', '-')} {value!r}: {exc}") from None
    try:
        return dataclasses.replace(function, **changes)
    except ConfigError as exc:
        raise ConfigError(f"{where}: {exc.message}") from None


def describe(options: Mapping[str, Any]) -> str:
    """The options as they were typed, for a warning: ``--timeout 10 --env A=1``."""
    words: list[str] = []
    for key, value in options.items():
        flag = f"--{key.replace('_', '-')}"
        if key == "env":
            words.extend(f"{flag} {pair}" for pair in value)
        elif key == "reset_on_timeout":
            words.append("--no-reset-on-timeout")
        elif value is False:  # an opt-out of an option on by default: --no-lambda-paths
            words.append(f"--no-{key.replace('_', '-')}")
        elif value is True:
            words.append(flag)
        else:
            words.append(f"{flag} {value}")
    return " ".join(words)

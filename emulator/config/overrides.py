"""What a user lays over a template's functions, as ``sam local`` takes it: ``--parameter-overrides`` (the
template's parameters), ``--env-vars FILE`` (SAM's JSON: ``Parameters`` for every function, then one map per
function), ``--env-file`` (dotenv), ``--env K=V``, and a config file's ``[functions.NAME]`` table without
``code_dir``, whose settings go over the template's function of that name.

Precedence of variables, highest first: ``--env``, ``--env-file``, the function's own map in ``--env-vars``, its
``Parameters`` map, the config file's table, the template. As in SAM, ``--env-vars`` sets only variables the
template declares for the function (SAM ignores the others, which surprises people: here each one ignored is named
in a warning); ``--env-file`` and ``--env`` set any variable, on every function.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from ..errors import ConfigError
from .settings import FILE_KEYS, FunctionConfig

log = logging.getLogger("lambda_freeze.sam")

_SAM_FORM = re.compile(r"ParameterKey=(?P<key>[^,]+),ParameterValue=(?P<value>.*)")


def parameter_overrides(words: Sequence[str] | None) -> dict[str, str]:
    """``K=V`` words, or SAM's long form ``ParameterKey=K,ParameterValue=V``."""
    overrides: dict[str, str] = {}
    for word in words or ():
        long_form = _SAM_FORM.fullmatch(word)
        if long_form:
            overrides[long_form["key"]] = long_form["value"]
            continue
        key, sep, value = word.partition("=")
        if not sep or not key:
            raise ConfigError(f"--parameter-overrides {word!r}: expected KEY=VALUE or ParameterKey=K,ParameterValue=V")
        overrides[key] = value
    return overrides


def read_env_vars(path: Path) -> dict[str, dict[str, str]]:
    """SAM's environment file: ``{"Parameters": {K: V}, "FunctionLogicalId": {K: V}, ...}``."""
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError:
        raise ConfigError(f"--env-vars {path} does not exist") from None
    except (OSError, ValueError) as exc:
        raise ConfigError(f"--env-vars {path}: not a JSON file: {exc}") from None
    if not isinstance(data, dict) or not all(isinstance(v, dict) for v in data.values()):
        raise ConfigError(f"--env-vars {path}: expected {{\"Parameters\": {{NAME: value}}, \"Function\": {{...}}}}")
    return {str(k): {str(n): _text(v) for n, v in values.items()} for k, values in data.items()}


def read_env_file(path: Path) -> dict[str, str]:
    """A dotenv file: ``NAME=value`` lines, ``export`` allowed, ``#`` comments, values optionally quoted."""
    try:
        lines = path.read_text().splitlines()
    except FileNotFoundError:
        raise ConfigError(f"--env-file {path} does not exist") from None
    env: dict[str, str] = {}
    for number, line in enumerate(lines, 1):
        text = line.strip()
        if not text or text.startswith("#"):
            continue
        key, sep, value = text.removeprefix("export ").partition("=")
        if not sep or not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", key.strip()):
            raise ConfigError(f"{path}:{number}: expected NAME=value")
        value = value.strip()
        if len(value) >= 2 and value[0] == value[-1] and value[0] in "'\"":
            value = value[1:-1]
        env[key.strip()] = value
    return env


def _text(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return "" if value is None else str(value)


def environment(
    *,
    logical_id: str,
    name: str,
    declared: Sequence[str],
    template_env: Mapping[str, str],
    env_vars: Mapping[str, Mapping[str, str]],
    env_file: Mapping[str, str],
    env: Mapping[str, str],
) -> dict[str, str]:
    """One function's variables with every override applied, in SAM's order; what is ignored is named."""
    merged = dict(template_env)
    for scope in ("Parameters", name if name in env_vars else logical_id):
        for key, value in env_vars.get(scope, {}).items():
            if key in declared:
                merged[key] = value
            elif scope != "Parameters":  # a shared map names variables of other functions too: not worth a warning
                log.warning("--env-vars %s.%s is not honoured: %s does not declare %s in Environment.Variables "
                            "(SAM ignores it too; declare it, or use --env-file / --env)", scope, key, logical_id, key)
    merged.update(env_file)
    merged.update(env)
    return merged


def declared_variables(template: Mapping[str, Any], logical_id: str) -> list[str]:
    """The variable names a function declares, in Globals.Function (for SAM's own type) and its Properties."""
    resource = (template.get("Resources") or {}).get(logical_id) or {}
    names: list[str] = []
    scopes = [resource.get("Properties") or {}]
    if resource.get("Type") == "AWS::Serverless::Function":
        scopes.insert(0, ((template.get("Globals") or {}).get("Function")) or {})
    for props in scopes:
        variables = (props.get("Environment") or {}).get("Variables") if isinstance(props, dict) else None
        if isinstance(variables, dict):
            names.extend(str(k) for k in variables if str(k) not in names)
    return names


def config_overlays(path: Path) -> dict[str, dict[str, Any]]:
    """The ``[functions.NAME]`` tables of a config file that have no ``code_dir``: settings laid over the template's
    function of that name (its logical id or FunctionName)."""
    import tomllib

    try:
        tables = tomllib.loads(path.read_text()).get("functions", {})
    except (OSError, tomllib.TOMLDecodeError):
        return {}  # ServerConfig.load reports an unreadable file
    return {str(name): dict(spec) for name, spec in tables.items() if isinstance(spec, dict) and "code_dir" not in spec}


def apply_overlay(function: FunctionConfig, spec: Mapping[str, Any], *, base_dir: Path, where: str) -> FunctionConfig:
    """``function`` with a config file's settings over it: the same keys as a function table, ``env`` merged."""
    unknown = sorted(set(spec) - set(FILE_KEYS) - {"env", "upstreams", "layers"})
    if unknown:
        raise ConfigError(f"{where}: unknown key(s) {', '.join(unknown)}")
    changes: dict[str, Any] = {}
    for key, value in spec.items():
        if key in FILE_KEYS:
            field_name, parse = FILE_KEYS[key]
            try:
                changes[field_name] = parse(value)
            except (TypeError, ValueError) as exc:
                raise ConfigError(f"{where}: {key} = {value!r}: {exc}") from None
    if "env" in spec:
        changes["env"] = {**function.env, **{str(k): _text(v) for k, v in dict(spec["env"]).items()}}
    if "upstreams" in spec:
        changes["upstreams"] = {**function.upstreams, **{str(k): str(v) for k, v in dict(spec["upstreams"]).items()}}
    if "layers" in spec:
        changes["layers"] = (*function.layers, *((base_dir / str(layer)).resolve() for layer in spec["layers"]))
    try:
        return dataclasses.replace(function, **changes)
    except ConfigError as exc:
        raise ConfigError(f"{where}: {exc.message}") from None

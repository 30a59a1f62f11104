"""One vocabulary for a function's settings passed by name (the pytest fixtures, the harness): the config file's
keys, which are the command line's option names (``timeout``, ``memory``, ``reserved_concurrency``), with
``FunctionConfig``'s field names (``timeout_s``, ``memory_mb``) accepted as the same settings; any other name is an
error that lists the known ones."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any

from ..errors import ConfigError
from .settings import FILE_KEYS, FunctionConfig

# Settings a caller passes apart from the file's keys: they are not a file's plain values.
_OWN_FIELDS = frozenset({"upstreams", "region", "account_id"})


def known_keys() -> list[str]:
    return sorted({*FILE_KEYS, *_OWN_FIELDS})


def function_settings(settings: Mapping[str, Any], *, where: str = "settings") -> dict[str, Any]:
    """``FunctionConfig`` keyword arguments from settings named by the file's keys or by the fields' names."""
    fields = {field.name for field in dataclasses.fields(FunctionConfig)}
    resolved: dict[str, Any] = {}
    for key, value in settings.items():
        if key in FILE_KEYS:
            field_name, parse = FILE_KEYS[key]
            try:
                resolved[field_name] = parse(value)
            except (TypeError, ValueError) as exc:
                raise ConfigError(f"{where}: {key}={value!r}: {exc}") from None
        elif key in fields and key not in ("name", "code_dir", "handler", "runtime", "env"):
            resolved[key] = value
        else:
            raise ConfigError(f"{where}: unknown setting {key!r}; known: {', '.join(known_keys())}")
    return resolved

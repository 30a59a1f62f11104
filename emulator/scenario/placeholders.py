"""Placeholders in scenario values, filled in when a run needs them: ``${port}`` and ``${python}`` in a service's
command, ``${services.NAME.port}`` and ``${databases.NAME.user}`` in environment variables, and
``${invoke.NAME.request_id}`` in an expectation's regular expressions. ``$${`` is a literal ``${``."""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

PLACEHOLDER = re.compile(r"\$(\$?)\{([^}]*)\}")
SERVICE_FIELDS = ("host", "port", "address")  # address: host:port
DATABASE_FIELDS = ("host", "port", "user", "name")


def names(text: str) -> list[str]:
    """The placeholders in ``text`` (``"${services.legacy.port}"`` -> ``["services.legacy.port"]``)."""
    return [match[2] for match in PLACEHOLDER.finditer(text) if not match[1]]


def fill(text: str, value: Callable[[str], str]) -> str:
    """``text`` with each placeholder replaced by ``value(name)``, and ``$${`` by ``${``."""
    return PLACEHOLDER.sub(lambda m: "${" + m[2] + "}" if m[1] else value(m[2]), text)


@dataclass(frozen=True)
class Known:
    """What a value may refer to where it stands in the file."""

    services: Mapping[str, bool] = field(default_factory=dict)  # service -> it has a port
    databases: Sequence[str] = ()
    invokes: Sequence[str] | None = None  # in an expectation: the invoke steps before it
    in_service: bool = False  # a service's command or env: ${port} and ${python}


def problem(name: str, known: Known) -> str | None:
    """Why ``${name}`` cannot be filled in here, or None."""
    parts = name.split(".")
    if known.in_service and name in ("port", "python"):
        return None
    if parts[0] == "services" and known.invokes is None:
        if len(parts) != 3 or parts[2] not in SERVICE_FIELDS:
            return f"${{{name}}}: expected ${{services.NAME.{'|'.join(SERVICE_FIELDS)}}}"
        if parts[1] not in known.services:
            declared = ", ".join(known.services) or "none"
            where = " before this one" if known.in_service else ""
            return f"${{{name}}}: no service {parts[1]!r} is declared{where} (declared: {declared})"
        if not known.services[parts[1]]:
            return (f"${{{name}}}: service {parts[1]} has no port (use ${{port}} in its command, or a (?P<port>...) "
                    "group in its ready_line)")
        return None
    if name == "run.dir" and known.invokes is None:  # an empty directory of the run's own, removed after it
        return None
    if parts[0] == "databases" and known.invokes is None:
        if len(parts) != 3 or parts[2] not in DATABASE_FIELDS:
            return f"${{{name}}}: expected ${{databases.NAME.{'|'.join(DATABASE_FIELDS)}}}"
        if parts[1] not in known.databases:
            return f"${{{name}}}: no database {parts[1]!r} (declared: {', '.join(known.databases) or 'none'})"
        return None
    if parts[0] == "invoke" and known.invokes is not None:
        shape = len(parts) == 3 if len(parts) > 2 and parts[2] == "request_id" else len(parts) > 3
        if not shape or parts[2] not in ("request_id", "payload"):
            return f"${{{name}}}: expected ${{invoke.NAME.request_id}} or ${{invoke.NAME.payload.KEY}}"
        if parts[1] not in known.invokes:
            named = ", ".join(known.invokes) or "none"
            return f"${{{name}}}: no earlier invoke step is named {parts[1]!r} (named: {named})"
        return None
    if known.invokes is not None:
        hint = "${invoke.NAME.request_id}, ${invoke.NAME.payload.KEY}"
    elif known.in_service:
        hint = "${port}, ${python}, ${services.NAME.port}, ${databases.NAME.user}, ..."
    else:
        hint = "${services.NAME.address}, ${databases.NAME.user}, ${run.dir}, ..."
    return f"${{{name}}}: unknown placeholder here; known: {hint} ($${{ is a literal ${{)"


def payload_value(payload_text: str, path: Sequence[str]) -> str:
    """The value at ``path`` in a JSON response, as text (strings as they are, other values as JSON)."""
    try:
        value: Any = json.loads(payload_text)
    except ValueError:
        raise LookupError(f"the response is not JSON, so it has no {'.'.join(path)} ({payload_text[:80]!r})") from None
    for key in path:
        if isinstance(value, list) and key.isdigit() and int(key) < len(value):
            value = value[int(key)]
        elif isinstance(value, dict) and key in value:
            value = value[key]
        else:
            raise LookupError(f"the response has no {'.'.join(path)} ({payload_text[:80]!r})")
    return value if isinstance(value, str) else json.dumps(value)

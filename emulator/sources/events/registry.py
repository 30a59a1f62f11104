"""Which builder makes each service's event for ``generate-event``: one line per service, naming the module of
this package and its function that builds a whole event from keyword arguments. A service is offered only when its
module is there."""

from __future__ import annotations

import importlib
import importlib.util
from collections.abc import Callable
from typing import Any

# service: (module, function).
BUILDERS: dict[str, tuple[str, str]] = {
    "s3": ("s3", "notification"),
    "sns": ("sns", "notification"),
    "dynamodb": ("dynamodb", "stream_batch"),
    "apigateway": ("apigateway", "example"),
    "http-api": ("http_api", "example"),
    "function-url": ("function_url", "example"),
    "sqs": ("sqs", "example"),
    "schedule": ("schedule", "example"),
}


def available() -> list[str]:
    """The services whose builder module exists, in name order."""
    return sorted(name for name, (module, _) in BUILDERS.items() if importlib.util.find_spec(_qualified(module)))


def builder(service: str) -> Callable[..., dict[str, Any]]:
    module, function = BUILDERS[service]
    built: Callable[..., dict[str, Any]] = getattr(importlib.import_module(_qualified(module)), function)
    return built


def _qualified(module: str) -> str:
    return f"{__package__}.{module}"

"""The OpenAPI document of the Invoke and inspection APIs, kept beside this module as ``openapi.yaml``."""

from __future__ import annotations

import functools
import json
from importlib import resources
from typing import Any


@functools.cache
def document() -> dict[str, Any]:
    """The document as a mapping (parsed once; do not modify it)."""
    import yaml  # type: ignore[import-untyped]  # loaded when the document is first asked for, not at start

    text = resources.files(__package__).joinpath("openapi.yaml").read_text(encoding="utf-8")
    loaded: dict[str, Any] = yaml.safe_load(text)
    return loaded


@functools.cache
def document_json() -> bytes:
    """The document as the JSON body the server answers with."""
    return json.dumps(document(), indent=1).encode()

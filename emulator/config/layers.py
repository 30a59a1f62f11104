"""Layers: the local layer directories a function is given (a SAM template's ``Layers`` naming an
``AWS::Serverless::LayerVersion`` or ``AWS::Lambda::LayerVersion`` with local content, ``--layer DIR``, a config
file's ``layers = [...]``), in the order Lambda extracts them into ``/opt``, and what each puts on the runtime's paths.

A layer directory is laid out as the layer's zip: ``python/``, ``python/lib/pythonX.Y/site-packages/``,
``nodejs/node_modules/``, ``nodejs/nodeNN/node_modules/``, ``bin/``, ``lib/``, ``extensions/``. Lambda extracts the
layers one after the other into ``/opt``, a later layer's file replacing an earlier one's; here each layer stays in
its own directory, so the later layers come first on every search path, which gives the same winner.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from ..errors import ConfigError

log = logging.getLogger("lambda_freeze.sam")

LAYER_TYPES = ("AWS::Serverless::LayerVersion", "AWS::Lambda::LayerVersion")
MAX_LAYERS = 5  # Lambda's limit per function


def check(layers: Sequence[Path], function: str) -> None:
    if len(layers) > MAX_LAYERS:
        raise ConfigError(f"function {function}: at most {MAX_LAYERS} layers, as on Lambda ({len(layers)} given)")
    for layer in layers:
        if not layer.is_dir():
            raise ConfigError(f"function {function}: layer directory {layer} does not exist")


def python_paths(layers: Sequence[Path], version: str) -> list[Path]:
    """``sys.path`` entries, as Lambda's ``/opt/python/lib/pythonX.Y/site-packages`` then ``/opt/python``."""
    newest_first = list(reversed(layers))
    return [*(layer / "python" / "lib" / f"python{version}" / "site-packages" for layer in newest_first),
            *(layer / "python" for layer in newest_first)]


def node_paths(layers: Sequence[Path], major: int) -> list[Path]:
    """``NODE_PATH`` entries, as Lambda's ``/opt/nodejs/nodeNN/node_modules`` then ``/opt/nodejs/node_modules``."""
    newest_first = list(reversed(layers))
    return [*(layer / "nodejs" / f"node{major}" / "node_modules" for layer in newest_first),
            *(layer / "nodejs" / "node_modules" for layer in newest_first)]


def bin_paths(layers: Sequence[Path]) -> list[Path]:
    return [layer / "bin" for layer in reversed(layers)]


def lib_paths(layers: Sequence[Path]) -> list[Path]:
    return [layer / "lib" for layer in reversed(layers)]


def from_template(
    value: Any,
    resources: Mapping[str, Any],
    *,
    base: Path,
    where: str,
    resolve: Callable[[Any], Any],
) -> tuple[Path, ...]:
    """The local layer directories of a function's ``Layers`` property. A layer given by ARN (or a parameter holding
    one) cannot be fetched: it is named in a warning and left out, the function is still served."""
    if value is None:
        return ()
    if not isinstance(value, list):
        raise ConfigError(f"{where}.Layers: expected a list of layers (!Ref MyLayer or an ARN), not {value!r}")
    layers: list[Path] = []
    for item in value:
        name = item.get("Ref") if isinstance(item, dict) and len(item) == 1 else None
        if isinstance(name, str) and name in resources:
            layers.append(_local_layer(name, resources[name], base=base, where=where))
            continue
        try:
            arn = resolve(item)
        except Exception as exc:  # the resolver's own error type: the message says what could not be evaluated
            log.warning("%s.Layers: %s is not honoured: %s", where, item, exc)
            continue
        log.warning("%s.Layers: %s is not honoured: a published layer is not downloaded; serve its content "
                    "locally (an AWS::Serverless::LayerVersion with ContentUri, or --layer DIR)", where, arn)
    return tuple(layers)


def _local_layer(name: str, resource: Any, *, base: Path, where: str) -> Path:
    kind = resource.get("Type") if isinstance(resource, dict) else None
    if kind not in LAYER_TYPES:
        raise ConfigError(f"{where}.Layers: {name} is a {kind}, not a layer ({' or '.join(LAYER_TYPES)})")
    props = resource.get("Properties") or {}
    field = "ContentUri" if kind == LAYER_TYPES[0] else "Content"
    content = props.get(field)
    if not isinstance(content, str) or content.startswith("s3://"):
        raise ConfigError(
            f"{where}.Layers: {name}.{field} is {content!r}: lambda-freeze serves a layer from a local directory"
        )
    directory = (base / content).resolve()
    if not directory.is_dir():
        raise ConfigError(f"{where}.Layers: {name}.{field}: the layer directory {directory} does not exist")
    return directory

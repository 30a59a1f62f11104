"""Modules that moved when ``emulator/`` was given its folders: importing one by its old name still works, with a
``DeprecationWarning`` that says where it lives now (``emulator.freezer`` → ``emulator.engine.freezer``)."""

from __future__ import annotations

import importlib
import sys
import warnings
from importlib.machinery import ModuleSpec
from types import ModuleType
from typing import TYPE_CHECKING, cast

if TYPE_CHECKING:
    from importlib.abc import Loader

_ENGINE = (
    "cgroupfs context environment extension_side extensions invocation leaks lifecycle logs memory memory_limit "
    "node_ric owner process reports runtimes shutdown timeline trace freezer"
).split()
MOVED: dict[str, str] = {
    **{f"emulator.{name}": f"emulator.engine.{name}" for name in _ENGINE},
    "emulator.function": "emulator.engine.pool",
    "emulator.async_invoke": "emulator.sources.async_invoke",
    "emulator.sam": "emulator.config.sam",
    "emulator.cloudformation": "emulator.config.cloudformation",
}


def new_name(old: str) -> str | None:
    """Where a module that moved lives now (its submodules too), or None."""
    for before, after in MOVED.items():
        if old == before or old.startswith(before + "."):
            return after + old[len(before) :]
    return None


# A finder and a loader by their protocols alone: importlib.abc would add milliseconds to every `import emulator`.
class _Alias:
    def __init__(self, target: str):
        self._target = target
        self._own_spec: ModuleSpec | None = None

    def create_module(self, spec: ModuleSpec) -> ModuleType:
        warnings.warn(f"{spec.name} moved to {self._target}: import it from there", DeprecationWarning, stacklevel=2)
        module = importlib.import_module(self._target)
        self._own_spec = module.__spec__
        return module

    def exec_module(self, module: ModuleType) -> None:
        # The module under its new name has run already. The import system has just given it the old name's spec:
        # it gets its own back, or its relative imports would resolve against the old name.
        module.__spec__ = self._own_spec


class MovedModules:
    def find_spec(self, fullname: str, path: object = None, target: ModuleType | None = None) -> ModuleSpec | None:
        moved = new_name(fullname) if fullname.startswith("emulator.") else None
        if moved is None:
            return None
        return ModuleSpec(fullname, cast("Loader", _Alias(moved)))


def install() -> None:
    if not any(isinstance(finder, MovedModules) for finder in sys.meta_path):
        sys.meta_path.insert(0, MovedModules())  # before the path finder, which would load a second copy

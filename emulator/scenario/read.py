"""Reading a scenario file (TOML, or YAML with PyYAML) and finding the line of each table, key and element."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path
from typing import Any

from .model import Path_, ScenarioError


def _read(path: Path) -> tuple[Any, dict[Path_, int]]:
    try:
        text = path.read_text()
    except OSError as exc:
        raise ScenarioError([f"{path}: cannot read the scenario file: {exc.strerror}"]) from None
    if path.suffix in (".yaml", ".yml"):
        try:
            import yaml  # type: ignore[import-untyped]
        except ImportError:
            problem = f"{path}: YAML scenarios need PyYAML (pip install pyyaml); or write it in TOML"
            raise ScenarioError([problem]) from None
        try:
            return yaml.safe_load(text), _yaml_lines(yaml.compose(text, Loader=yaml.SafeLoader))
        except yaml.YAMLError as exc:
            mark = getattr(exc, "problem_mark", None)
            where = f"{path}:{mark.line + 1}" if mark is not None else str(path)
            raise ScenarioError([f"{where}: not valid YAML: {getattr(exc, 'problem', exc)}"]) from None
    try:
        return tomllib.loads(text), _toml_lines(text)
    except tomllib.TOMLDecodeError as exc:
        found = re.search(r"\(at line (\d+), column \d+\)", str(exc))
        where = f"{path}:{found.group(1)}" if found else str(path)
        raise ScenarioError([f"{where}: not valid TOML: {re.sub(r' [(]at line.*', '', str(exc))}"]) from None


def _toml_keys(text: str) -> list[str]:
    parts = re.findall(r'"((?:[^"\\]|\\.)*)"|\'([^\']*)\'|([A-Za-z0-9_-]+)', text)
    return [a or b or c for a, b, c in parts]


_KEY = r"""(?:[A-Za-z0-9_-]+|"[^"]*"|'[^']*')"""
_ASSIGNMENT = re.compile(rf"^({_KEY}(?:\s*\.\s*{_KEY})*)\s*=\s*(.*)$")


def _toml_lines(text: str) -> dict[Path_, int]:
    """Where each table, key and array element starts (tomllib keeps no positions): a scan of the text that
    follows ``[table]`` and ``[[array]]`` headers, ``key = value`` lines and arrays of inline tables."""
    lines: dict[Path_, int] = {}
    counts: dict[Path_, int] = {}  # arrays of tables seen so far
    table: Path_ = ()
    array: Path_ | None = None  # inside a multi-line array value
    quote: str | None = None  # inside a multi-line string that this quote ends
    element, depth = 0, 0
    for number, raw in enumerate(text.splitlines(), 1):
        if quote is not None:
            quote = None if raw.count(quote) % 2 else quote
            continue
        line = raw.split(" #", 1)[0].strip() if not raw.lstrip().startswith("#") else ""
        if not line:
            continue
        if array is not None:
            for _ in re.findall(r"(?:^|,)\s*\{", line):
                lines.setdefault((*array, element), number)
                element += 1
            depth += line.count("[") - line.count("]")
            if depth <= 0:
                array = None
            continue
        header = re.match(r"^\[\[(.+?)\]\]|^\[(.+?)\]", line)
        if header:
            path: Path_ = ()
            for key in _toml_keys(header.group(1) or header.group(2)):
                path = (*path, key)
                if path in counts and not (header.group(1) and path == tuple(_toml_keys(header.group(1)))):
                    path = (*path, counts[path] - 1)
            if header.group(1):
                counts[path] = counts.get(path, 0) + 1
                lines.setdefault(path, number)
                path = (*path, counts[path] - 1)
            lines.setdefault(path, number)
            table = path
            continue
        assignment = _ASSIGNMENT.match(line)
        if not assignment:
            continue
        key_path = (*table, *_toml_keys(assignment.group(1)))
        lines.setdefault(key_path, number)
        value = assignment.group(2)
        quote = next((q for q in ('"""', "'''") if value.startswith(q) and value.count(q) % 2), None)
        if value.startswith("{"):
            for inner in re.findall(r"([A-Za-z0-9_-]+)\s*=", value):
                lines.setdefault((*key_path, inner), number)
        if value.startswith("["):
            element = 0
            for _ in re.findall(r"(?:\[|,)\s*\{", value):
                lines.setdefault((*key_path, element), number)
                element += 1
            depth = value.count("[") - value.count("]")
            array = key_path if depth > 0 else None
    return lines


def _yaml_lines(node: Any, path: Path_ = (), lines: dict[Path_, int] | None = None) -> dict[Path_, int]:
    lines = {} if lines is None else lines
    if node is None:
        return lines
    lines.setdefault(path, node.start_mark.line + 1)
    if node.tag.endswith(":map"):
        for key, value in node.value:
            lines.setdefault((*path, key.value), key.start_mark.line + 1)
            _yaml_lines(value, (*path, key.value), lines)
    elif node.tag.endswith(":seq"):
        for index, item in enumerate(node.value):
            _yaml_lines(item, (*path, index), lines)
    return lines

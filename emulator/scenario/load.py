"""Loading a scenario: ``load()`` and ``validate()`` turn file data into a ``Scenario`` or list every problem."""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from ..config import FILE_KEYS, FunctionConfig
from ..errors import ConfigError
from ..proxy import make_toxic
from ..proxy.errors import ProxyError
from .checks import (
    _BAD,
    DATABASE_KEYS,
    EXPECT_KEYS,
    FAULT_KEYS,
    FUNCTION_KEYS,
    INVOCATION_KEYS,
    SECONDS,
    TOP_KEYS,
    Check,
    _Checker,
    _kind,
    _string,
    toxic_settings,
)
from .model import (
    ACTIONS,
    CONDITIONS,
    DEFAULT_RUNS,
    FUNCTION_NAME,
    IDENTIFIER,
    DatabaseSpec,
    Expectation,
    FaultSpec,
    FunctionSpec,
    Path_,
    Scenario,
    ScenarioError,
    Step,
)
from .read import _read


def load(path: str | Path) -> Scenario:
    """Read and check a scenario file; a ``ScenarioError`` lists every problem with its line and field."""
    path = Path(path)
    data, lines = _read(path)
    return validate(data, path, lines)


def validate(data: Any, path: str | Path, lines: dict[Path_, int] | None = None) -> Scenario:
    """Check parsed scenario data; ``path`` names it in messages and anchors relative code directories."""
    path = Path(path)
    lines = lines or {}
    steps = data.get("steps") if isinstance(data, dict) else None
    actions = [next(iter(s)) if isinstance(s, dict) and len(s) == 1 else "" for s in steps or []]
    ck = _Checker(path, lines, [a if a in ACTIONS else "" for a in actions])
    scenario = _Builder(ck, path).build(data)
    if ck.problems or scenario is None:
        raise ScenarioError([text for _, text in sorted(ck.problems, key=lambda p: p[0])])
    return scenario


class _Builder:
    def __init__(self, ck: _Checker, path: Path):
        self.ck = ck
        self.base = path.resolve().parent
        self.databases: dict[str, DatabaseSpec] = {}
        self.functions: dict[str, FunctionSpec] = {}
        # Every name the file declares, the faulty ones too: what refers to them is not faulty for that.
        self.database_names: list[str] = []
        self.function_names: list[str] = []

    def fail(self, where: Path_, message: str) -> None:
        self.ck.error(where, message)

    def build(self, data: Any) -> Scenario | None:
        ck = self.ck
        top = ck.table(data, (), TOP_KEYS, required=("functions", "steps"))
        if top is _BAD and isinstance(data, dict):  # go on, to report every problem at once
            top = {key: value for key, value in data.items() if key in TOP_KEYS}
        if top is _BAD or "functions" not in top or "steps" not in top:
            return None
        self.database_names = list(top.get("databases", {})) if isinstance(top.get("databases"), dict) else []
        self.function_names = list(top["functions"]) if isinstance(top["functions"], dict) else []
        for name, spec in _items(ck, top.get("databases", {}), ("databases",), IDENTIFIER, "a database name"):
            self.database(name, spec)
        for name, spec in _items(ck, top["functions"], ("functions",), FUNCTION_NAME, "a function name", 1):
            self.function(name, spec)
        faults: dict[str, FaultSpec] = {}
        for name, spec in _items(ck, top.get("faults", {}), ("faults",), IDENTIFIER, "a toxic name"):
            added = self.fault(name, spec, ("faults", name), FAULT_KEYS)
            if added is not None:
                faults[name] = added
        declared = list(top.get("faults", {})) if isinstance(top.get("faults"), dict) else []
        steps = self.steps(top["steps"], {name: faults.get(name) for name in declared})
        if ck.problems:
            return None
        return Scenario(
            path=ck.path,
            description=top.get("description", ""),
            links=tuple(top.get("links", ())),
            runs=top.get("runs", DEFAULT_RUNS),
            required_fraction=float(top.get("required_fraction", 1.0)),
            freezer=top.get("freezer"),
            functions=self.functions,
            databases=self.databases,
            faults=faults,
            steps=tuple(steps),
        )

    def database(self, name: str, spec: Any) -> None:
        where = ("databases", name)
        if not isinstance(spec, dict):
            self.ck.error(where, f"expected a table, not {_kind(spec)}")
            return
        kind = spec.get("kind")
        if kind not in DATABASE_KEYS:
            self.ck.error((*where, "kind"), "required" if kind is None else f"{kind!r}: choose postgresql or mysql")
            return
        for key in [k for k in spec if k not in DATABASE_KEYS[kind]]:
            other = next((other for other, keys in DATABASE_KEYS.items() if key in keys), None)
            if other is not None:
                self.ck.error((*where, key), f"a setting of {other} databases, not of {kind} ones")
                spec = {k: v for k, v in spec.items() if k != key}
        checked = self.ck.table(spec, where, DATABASE_KEYS[kind])
        if checked is not _BAD:
            settings = {k: v for k, v in checked.items() if k != "kind"}
            self.databases[name] = DatabaseSpec(name, kind, settings)

    def function(self, name: str, spec: Any) -> None:
        ck, where = self.ck, ("functions", name)
        checked = ck.table(spec, where, FUNCTION_KEYS, required=("code_dir",))
        if checked is _BAD:
            return
        for prefix, target in checked.get("databases", {}).items():
            if target not in self.database_names:
                ck.error((*where, "databases", prefix), f"no database {target!r}; {_known(self.database_names)}")
            elif checked.get("upstreams", {}).get(prefix, target) != target:
                ck.error((*where, "upstreams", prefix), f"names another database than databases.{prefix}")
        for upstream, target in checked.get("upstreams", {}).items():
            if target not in self.database_names and not re.fullmatch(r"[^\s:]+:\d{1,5}|\[[0-9a-fA-F:]+\]:\d{1,5}",
                                                                       target):
                ck.error((*where, "upstreams", upstream),
                         f"{target!r} is neither a database ({_known(self.database_names)}) nor host:port")
        settings = {FILE_KEYS[k][0]: FILE_KEYS[k][1](v) for k, v in checked.items() if k in FILE_KEYS}
        settings.setdefault("handler", "app.handler")
        upstreams = {u: "127.0.0.1:1" if t in self.database_names else t
                     for u, t in checked.get("upstreams", {}).items()}
        try:  # the engine's own checks: code directory, handler, ranges, reserved variables
            FunctionConfig(name=name, code_dir=(self.base / checked["code_dir"]).resolve(),
                           env=checked.get("env", {}), upstreams=upstreams, **settings)
        except ConfigError as exc:
            ck.error((*where, _key_named(exc.message, checked)), exc.message.removeprefix(f"function {name}: "))
            return
        self.functions[name] = FunctionSpec(
            name=name,
            code_dir=(self.base / checked["code_dir"]).resolve(),
            freezer=checked.get("freezer"),
            env=checked.get("env", {}),
            databases=checked.get("databases", {}),
            upstreams=checked.get("upstreams", {}),
            settings=settings,
        )

    def fault(self, name: str, spec: Any, where: Path_, keys: Mapping[str, Check]) -> FaultSpec | None:
        ck = self.ck
        checked = ck.table(spec, where, keys, required=("type",))
        if checked is _BAD:
            return None
        kind = checked["type"]
        settings = checked.get("settings", {})
        known = toxic_settings(kind)
        for key, (check, required) in known.items():
            if key in settings:
                settings[key] = check(ck, settings[key], (*where, "settings", key))
            elif required:
                ck.error((*where, "settings", key), f"required by the {kind} toxic")
        for key in settings:
            if key not in known:
                ck.error((*where, "settings", key), f"unknown setting of the {kind} toxic; known: "
                         f"{', '.join(known) or 'none'}")
        missing = [key for key, (_, required) in known.items() if required and key not in settings]
        if missing or set(settings) - set(known) or any(value is _BAD for value in settings.values()):
            return None
        try:
            make_toxic(kind, settings)
        except ProxyError as exc:
            self.fail((*where, "settings"), str(exc))
            return None
        function = self.target_function(checked.get("function"), (*where, "function"))
        if function is None or function not in self.functions:  # a faulty function is reported already
            return None
        upstreams = list(self.functions[function].upstreams)
        upstream = checked.get("upstream")
        if upstream is None and len(upstreams) == 1:
            upstream = upstreams[0]
        if upstream not in upstreams:
            if not upstreams:
                why = f"function {function} has no upstreams: declare one, e.g. upstreams = {{ DB = \"<database>\" }}"
            elif upstream is None:
                why = f"required: function {function} has several ({', '.join(upstreams)})"
            else:
                why = f"function {function} has no upstream {upstream!r} ({', '.join(upstreams)})"
            ck.error((*where, "upstream"), why)
            return None
        return FaultSpec(name, kind, settings, checked.get("direction", "downstream"), function, upstream)

    def target_function(self, name: str | None, where: Path_) -> str | None:
        names = self.function_names
        if name is None:
            if len(names) == 1:
                return names[0]
            if names:
                self.ck.error(where, f"required: the scenario has several functions ({', '.join(names)})")
            return None
        if name not in names:
            self.ck.error(where, f"no function {name!r}; {_known(names)}")
            return None
        return name

    def steps(self, raw: Any, active: dict[str, FaultSpec | None]) -> list[Step]:
        """The steps; ``active`` holds the faults in place (None: a faulty one, reported already)."""
        ck = self.ck
        if not isinstance(raw, list) or not raw:
            ck.error(("steps",), "expected an array of steps ([[steps]] tables), at least one")
            return []
        steps: list[Step] = []
        counts: dict[str, int] = {}
        invokes: dict[str, Step] = {}
        last_invoke: Step | None = None
        for index, item in enumerate(raw):
            where: Path_ = ("steps", index)
            if not isinstance(item, dict) or len(item) != 1 or next(iter(item)) not in ACTIONS:
                found = ", ".join(map(str, item)) if isinstance(item, dict) else _kind(item)
                ck.error(where, f"a step is a table with exactly one action ({', '.join(ACTIONS)}); found: "
                         f"{found or 'nothing'}")
                continue
            action, value = next(iter(item.items()))
            counts[action] = counts.get(action, 0) + 1
            label = f"{action}#{counts[action]}"
            here: Path_ = (*where, action)
            line = next((ck.lines[where[:n]] for n in (2, 1) if where[:n] in ck.lines), None)
            base = {"number": index + 1, "action": action, "line": line}
            if action in ("invoke", "invoke_async"):
                checked = ck.table(value, here, INVOCATION_KEYS)
                if checked is _BAD:  # still known by its name: expect steps that refer to it add no noise
                    name = value.get("as") if isinstance(value, dict) and isinstance(value.get("as"), str) else None
                    invokes[name or label] = last_invoke = Step(**base, label=label, key=name or label)
                    continue
                name = checked.get("as")
                if name in invokes:
                    ck.error((*here, "as"), f"{name!r} already names step {invokes[name].number}")
                function = self.target_function(checked.get("function"), (*here, "function"))
                step = Step(**base, label=f"{label} ({name})" if name else label, function=function,
                            payload=checked.get("payload", {}), key=name or label)
                invokes[step.key or label] = last_invoke = step
            elif action == "stay_frozen":
                seconds = SECONDS(ck, value, here)
                if seconds is _BAD:
                    continue
                step = Step(**base, label=f"{label} ({seconds:g} s)", seconds=float(seconds))
            elif action == "fault":
                fault_step = self.fault_step(value, here, active, base, label)
                if fault_step is None:
                    continue
                step = fault_step
            elif action == "kill_db_connections":
                if value is True:
                    names = tuple(self.database_names)
                elif isinstance(value, str) and value in self.database_names:
                    names = (value,)
                else:
                    ck.error(here, f"a database's name or true (all); {_known(self.database_names)}, not {value!r}")
                    continue
                if not names:
                    ck.error(here, "the scenario has no databases")
                    continue
                step = Step(**base, label=f"{label} ({value if value is not True else 'all'})", databases=names)
            else:
                expectation = self.expectation(value, here, invokes, last_invoke)
                if expectation is None:
                    continue
                step = Step(**base, label=f"{label} → {expectation.invoke}", expect=expectation)
            steps.append(step)
        if not any(step.action == "expect" for step in steps) and not ck.problems:
            ck.error(("steps",), "no expect step: add one that says which outcome reproduces the bug")
        return steps

    def fault_step(self, value: Any, here: Path_, active: dict[str, FaultSpec | None], base: dict[str, Any],
                   label: str) -> Step | None:
        ck = self.ck
        if isinstance(value, dict) and "remove" in value:
            checked = ck.table(value, here, {"remove": _string(IDENTIFIER, "a toxic name")}, required=("remove",))
            if checked is _BAD:
                return None
            if checked["remove"] not in active:
                self.fail((*here, "remove"), f"no fault {checked['remove']!r} is in place at this step; "
                          f"{_known(active)}")
                return None
            removed = active.pop(checked["remove"])
            if removed is None:
                return None
            return Step(**base, label=f"{label} (remove {removed.name})", fault=removed, remove=removed.name)
        if not isinstance(value, dict) or "add" not in value:
            self.fail(here, 'expected { add = "<name>", type = "<toxic>", ... } or { remove = "<name>" }')
            return None
        name = _string(IDENTIFIER, "a toxic name")(ck, value["add"], (*here, "add"))
        if name is _BAD:
            return None
        if name in active:
            self.fail((*here, "add"), f"fault {name!r} is already in place; remove it first")
            return None
        fault = self.fault(name, {k: v for k, v in value.items() if k != "add"}, here, FAULT_KEYS)
        active[name] = fault
        if fault is None:
            return None
        return Step(**base, label=f"{label} (add {name})", fault=fault)

    def expectation(self, value: Any, here: Path_, invokes: dict[str, Step], last: Step | None) -> Expectation | None:
        ck = self.ck
        checked = ck.table(value, here, EXPECT_KEYS)
        if checked is _BAD:
            return None
        if not any(key in checked for key in CONDITIONS):
            self.fail(here, f"says nothing to check: give at least one of {', '.join(CONDITIONS)}")
            return None
        target = invokes.get(checked["invoke"]) if "invoke" in checked else last
        if target is None:
            if "invoke" in checked:
                known = ", ".join(invokes) or "none"
                self.fail((*here, "invoke"), f"no earlier invoke step is named {checked['invoke']!r} (named: {known})")
                return None
            self.fail(here, "no invoke step comes before it")
            return None
        if checked.get("ok") is True and ("error_type" in checked or "message" in checked):
            self.fail((*here, "ok"), "ok = true contradicts error_type / message")
            return None
        if target.action == "invoke_async" and "log" in checked:
            self.fail((*here, "log"), "not available for invoke_async (its log is not returned)")
            return None
        assert target.key is not None
        return Expectation(invoke=target.key, **{key: checked[key] for key in CONDITIONS if key in checked})


def _items(ck: _Checker, value: Any, where: Path_, pattern: str, what: str, at_least: int = 0) -> list[tuple[str, Any]]:
    if not isinstance(value, dict):
        ck.error(where, f"expected a table of {what}s, not {_kind(value)}")
        return []
    if len(value) < at_least:
        ck.error(where, f"needs at least {at_least} entry")
    good = []
    for key, item in value.items():
        if re.fullmatch(pattern, key):
            good.append((key, item))
        else:
            ck.error((*where, key), f"{key!r} is not {what} (letters, digits, _ and -)")
    return good


def _known(names: Iterable[str]) -> str:
    names = list(names)
    return f"known: {', '.join(names)}" if names else "none is defined"


def _key_named(message: str, keys: Mapping[str, Any]) -> str:
    """The file key a FunctionConfig message is about ("timeout must be ..." -> "timeout")."""
    text = message.lower().replace("code directory", "code dir").replace("upstream", "upstreams")
    named = [key for key in keys if key.replace("_", " ") in text]
    if "reserved by lambda" in text:
        named.append("env")
    return max(named, key=len) if named else ""

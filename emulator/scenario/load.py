"""Loading a scenario: ``load()`` and ``validate()`` turn file data into a ``Scenario`` or list every problem."""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from ..config.events import BucketConfig, QueueConfig, ScheduleConfig
from ..config.http_routes import routes_from_toml, url_from_toml
from ..config.settings import FILE_KEYS, FunctionConfig
from ..errors import ConfigError
from ..proxy import make_toxic
from ..proxy.errors import ProxyError
from . import bucket_checks, queue_checks
from .checks import (
    _BAD,
    DATABASE_KEYS,
    FAULT_KEYS,
    FUNCTION_KEYS,
    SERVICE_KEYS,
    TOP_KEYS,
    _Checker,
    _kind,
    toxic_settings,
)
from .model import (
    ACTIONS,
    DEFAULT_READY_TIMEOUT_S,
    DEFAULT_RUNS,
    FUNCTION_NAME,
    IDENTIFIER,
    DatabaseSpec,
    FaultSpec,
    FunctionSpec,
    Path_,
    Scenario,
    ScenarioError,
    ServiceSpec,
)
from .placeholders import Known, names, problem
from .read import _read
from .steps import StepBuilder

# An upstream's target: a database, a service or host:port, optionally with how the proxy passes on a close.
TARGET = re.compile(r"(?P<target>\S+?)(?P<close>\s+close=(?:mirror|fin|rst))?")
HOST_PORT = re.compile(r"[^\s:\[\]]+:\d{1,5}|\[[0-9a-fA-F:]+\]:\d{1,5}")


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
        self.services: dict[str, ServiceSpec] = {}
        # Every name the file declares, the faulty ones too: what refers to them is not faulty for that.
        self.database_names: list[str] = []
        self.function_names: list[str] = []
        self.queues: dict[str, QueueConfig] = {}
        self.buckets: dict[str, BucketConfig] = {}
        self.schedules: dict[str, ScheduleConfig] = {}
        self.service_ports: dict[str, bool] = {}  # service -> it has a port (a faulty one: assumed so)

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
        self.queues = queue_checks.queues(ck, top.get("queues"), ck.path)
        self.buckets = bucket_checks.buckets(ck, top.get("buckets"), self.queues, ck.path)
        for name, spec in _items(ck, top.get("databases", {}), ("databases",), IDENTIFIER, "a database name"):
            self.database(name, spec)
        for name, spec in _items(ck, top.get("services", {}), ("services",), IDENTIFIER, "a service name"):
            self.service(name, spec)
        for name, spec in _items(ck, top["functions"], ("functions",), FUNCTION_NAME, "a function name", 1):
            self.function(name, spec)
        faults: dict[str, FaultSpec] = {}
        for name, spec in _items(ck, top.get("faults", {}), ("faults",), IDENTIFIER, "a toxic name"):
            added = self.fault(name, spec, ("faults", name))
            if added is not None:
                faults[name] = added
        declared = list(top.get("faults", {})) if isinstance(top.get("faults"), dict) else []
        steps = StepBuilder(self, {name: faults.get(name) for name in declared}).build(top["steps"])
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
            services=self.services,
            queues=self.queues,
            buckets=self.buckets,
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
            settings = {k: v for k, v in checked.items() if k not in ("kind", "setup")}
            self.databases[name] = DatabaseSpec(name, kind, settings, checked.get("setup", ()))

    def service(self, name: str, spec: Any) -> None:
        ck, where = self.ck, ("services", name)
        before = dict(self.service_ports)  # a service may refer to the ones declared before it
        self.service_ports[name] = True
        if name in self.database_names:
            ck.error(where, f"a database is named {name!r} too: name the service differently, so that "
                            "upstreams can tell them apart")
        checked = ck.table(spec, where, SERVICE_KEYS, required=("command",))
        if checked is _BAD:
            return
        cwd = (self.base / checked.get("cwd", ".")).resolve()
        if not cwd.is_dir():
            ck.error((*where, "cwd"), f"directory {cwd} does not exist")
        values: list[tuple[Path_, str]] = [((*where, "command", i), arg) for i, arg in enumerate(checked["command"])]
        values += [((*where, "env", key), value) for key, value in checked.get("env", {}).items()]
        known = Known(services=before, databases=self.database_names, in_service=True)
        for at, text in values:
            for placeholder in names(text):
                why = problem(placeholder, known)
                if why is not None:
                    ck.error(at, why)
        auto_port = any("port" in names(text) for _, text in values)
        ready = checked.get("ready_line")
        port_group = ready is not None and "port" in ready.groupindex
        if auto_port and port_group:
            ck.error((*where, "ready_line"), "its (?P<port>...) group and ${port} both choose the port: keep one")
        if ready is None and not auto_port:
            ck.error(where, "how does it tell it is ready? Give a ready_line (a regular expression matched against "
                            "each line of its output), or ${port} in its command (ready when the port accepts "
                            "connections)")
        self.service_ports[name] = auto_port or port_group
        self.services[name] = ServiceSpec(
            name=name,
            command=tuple(checked["command"]),
            cwd=cwd,
            env=checked.get("env", {}),
            ready_line=ready,
            auto_port=auto_port,
            ready_timeout_s=float(checked.get("ready_timeout", DEFAULT_READY_TIMEOUT_S)),
        )

    def function(self, name: str, spec: Any) -> None:
        ck, where = self.ck, ("functions", name)
        checked = ck.table(spec, where, FUNCTION_KEYS, required=("code_dir",))
        if checked is _BAD:
            return
        for prefix, target in checked.get("databases", {}).items():
            if target not in self.database_names:
                ck.error((*where, "databases", prefix), f"no database {target!r}; {_known(self.database_names)}")
            elif upstream_target(checked.get("upstreams", {}).get(prefix, target))[0] != target:
                ck.error((*where, "upstreams", prefix), f"names another database than databases.{prefix}")
        upstreams = {}
        for upstream, value in checked.get("upstreams", {}).items():
            target, close = upstream_target(value)
            if target in self.database_names or self.service_ports.get(target):
                upstreams[upstream] = f"127.0.0.1:1{close}"
            elif target in self.service_ports:
                ck.error((*where, "upstreams", upstream), f"service {target} has no port")
            elif not HOST_PORT.fullmatch(target):
                services = f", a service ({_known(self.service_ports)})" if self.service_ports else ""
                ck.error((*where, "upstreams", upstream),
                         f"{value!r} is neither a database ({_known(self.database_names)}){services} nor "
                         "host:port (each may be followed by ' close=mirror|fin|rst')")
            else:
                upstreams[upstream] = value.strip()
        known = Known(services=self.service_ports, databases=self.database_names)
        for key, text in checked.get("env", {}).items():
            for placeholder in names(text):
                why = problem(placeholder, known)
                if why is not None:
                    ck.error((*where, "env", key), why)
        settings = {FILE_KEYS[k][0]: FILE_KEYS[k][1](v) for k, v in checked.items() if k in FILE_KEYS}
        settings.setdefault("handler", "app.handler")
        for key, parse in (("routes", routes_from_toml), ("url", url_from_toml)):  # the front door's, as in a config
            if key in checked:
                try:
                    settings[key] = parse(checked[key], key)
                except ConfigError as exc:
                    ck.error((*where, key), exc.message)
                    return
        try:  # the engine's own checks: code directory, handler, ranges, reserved variables
            FunctionConfig(name=name, code_dir=(self.base / checked["code_dir"]).resolve(),
                           env=checked.get("env", {}), upstreams=upstreams, **settings)
        except ConfigError as exc:
            ck.error((*where, _key_named(exc.message, checked)), exc.message.removeprefix(f"function {name}: "))
            return
        schedules = bucket_checks.schedules(ck, name, checked["schedules"], ck.path) if "schedules" in checked else ()
        self.schedules.update((schedule.name, schedule) for schedule in schedules)
        self.functions[name] = FunctionSpec(
            name=name,
            code_dir=(self.base / checked["code_dir"]).resolve(),
            freezer=checked.get("freezer"),
            env=checked.get("env", {}),
            databases=checked.get("databases", {}),
            upstreams=checked.get("upstreams", {}),
            settings=settings,
            sqs=queue_checks.mappings(ck, name, checked["sqs"], self.queues, ck.path) if "sqs" in checked else (),
            schedules=schedules,
        )

    def fault(self, name: str, spec: Any, where: Path_) -> FaultSpec | None:
        ck = self.ck
        checked = ck.table(spec, where, FAULT_KEYS, required=("type",))
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

    def target_database(self, name: str | None, where: Path_) -> str | None:
        names = self.database_names
        if name is None:
            if len(names) == 1:
                return names[0]
            self.ck.error(where, f"required: the scenario has several databases ({', '.join(names)})" if names
                          else "the scenario has no databases: declare one, e.g. [databases.pg] kind = \"postgresql\"")
            return None
        if name not in names:
            self.ck.error(where, f"no database {name!r}; {_known(names)}")
            return None
        return name


def upstream_target(value: str) -> tuple[str, str]:
    """An upstream's value split into its target and its close mode (``"pg close=fin"`` -> ``("pg", " close=fin")``);
    a value of another shape is all target."""
    parts = TARGET.fullmatch(value.strip())
    return (parts["target"], parts["close"] or "") if parts else (value, "")


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

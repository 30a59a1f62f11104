"""Writing the scenario: one function (one per environment when the logs show several), the invocations at the
production offsets with the frozen gaps as ``stay_frozen`` steps, the payloads, and the production outcomes as
expectations; TOML (or YAML), checked by the scenario loader before it is written."""

from __future__ import annotations

import copy
import json
import os
import re
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..load import validate
from ..model import ScenarioError
from .lines import LogsError
from .rebuild import Invocation, Rebuilt
from .timing import concurrent_steps, overlapping, requested, sequential_steps

_BARE_KEY = re.compile(r"[A-Za-z0-9_-]+")
# The idle timeouts a compressed gap may slip under, by database kind: (setting, what the server does).
_IDLE_SETTINGS = {"postgresql": ("idle_session_timeout_s", "idle_in_transaction_session_timeout_s"),
                  "mysql": ("wait_timeout_s",)}


@dataclass
class Options:
    code_dir: Path
    handler: str
    runtime: str
    env: dict[str, str] = field(default_factory=dict)
    name: str | None = None
    speed: float = 1.0  # idle gaps divided by this
    max_gap_s: float | None = None  # and capped at this
    runs: int = 3
    events: list[Any] | None = None  # payloads in order
    events_by_id: dict[str, Any] = field(default_factory=dict)  # payloads by request id
    extra: dict[str, Any] = field(default_factory=dict)  # --with: databases, services, freezer, function keys
    extra_dir: Path = Path(".")


@dataclass
class Written:
    text: str
    notes: list[str]  # what the reader should know: compressed gaps, hidden timeouts, overlaps, missing payloads


def scenario(rebuilt: Rebuilt, options: Options, out: Path, sources: list[str]) -> Written:
    notes: list[str] = []
    base = options.name or rebuilt.function or "function"
    several = len(rebuilt.environments) > 1
    names = {env.stream: f"{base}-{n}" if several else base for n, env in enumerate(rebuilt.environments, 1)}
    data: dict[str, Any] = {
        "description": _description(rebuilt, sources, several),
        "runs": options.runs,
    }
    if "freezer" in options.extra:
        data["freezer"] = options.extra["freezer"]
    for key in ("databases", "services"):
        if options.extra.get(key):
            data[key] = _relocated(key, options.extra[key], options.extra_dir, out.parent)
    function = _function(rebuilt, options, out, notes)
    warm = [names[env.stream] for env in rebuilt.environments
            if env.invocations[0].init_ms is None and env.invocations[0].duration_ms is not None]
    if warm:
        notes.append(f"the logs begin after the cold start of {', '.join(warm)} (its first invocation has no Init "
                     f"Duration): the replay starts it cold")
    data["functions"] = {name: copy.deepcopy(function) for name in names.values()}  # YAML: no shared anchors
    timed = overlapping(rebuilt)
    # In the order they started; invocations that overlapped, in the order they were asked for (START less INIT).
    invocations = sorted(rebuilt.invocations, key=requested) if timed else rebuilt.invocations
    first = min((requested(i) for i in invocations if i.start_s is not None), default=None)
    labels = {id(invocation): f"r{n}" for n, invocation in enumerate(invocations, 1)}
    payloads = _payloads(invocations, options, notes)
    if timed:
        steps, comments, gaps = concurrent_steps(rebuilt, options.speed, options.max_gap_s, labels)
        notes.append(f"{timed}: the replay starts every invocation at its production offset (an invoke step's "
                     f"`at`), each environment's after the one it served before (`after`)")
    else:
        steps, comments, gaps = sequential_steps(rebuilt, options.speed, options.max_gap_s, labels)
    by_label = {labels[id(i)]: (n, i) for n, i in enumerate(invocations)}
    for step in steps:
        if "invoke" in step:
            n, invocation = by_label[step["invoke"]["as"]]
            if several:
                step["invoke"]["function"] = names[invocation.stream]
            step["invoke"]["payload"] = payloads[n]
            step["invoke"]["production"] = _production(invocation, first)
    for n, invocation in enumerate(invocations, 1):
        steps.append({"expect": _expectation(f"r{n}", invocation)})
    data["steps"] = steps
    notes.extend(_hidden_timeouts(gaps, data.get("databases", {}), options))
    text = _render(data, comments, out, rebuilt, names)
    _check(text, out)
    return Written(text, notes)


def _description(rebuilt: Rebuilt, sources: list[str], several: bool) -> str:
    count = len(rebuilt.invocations)
    failed = sum(1 for i in rebuilt.invocations if i.outcome != "ok")
    where = f"{len(rebuilt.environments)} execution environments (one function each, so that every invocation " \
            f"goes to the environment that served it)" if several else "one execution environment"
    return (f"Replay of {count} invocation(s), {failed} failed in production, on {where}, from the logs "
            f"{', '.join(Path(s).name for s in sources)}: the production outcomes are expected back.")


def _function(rebuilt: Rebuilt, options: Options, out: Path, notes: list[str]) -> dict[str, Any]:
    function: dict[str, Any] = {
        "code_dir": os.path.relpath(options.code_dir.resolve(), out.parent.resolve()),
        "handler": options.handler,
        "runtime": options.runtime,
    }
    if rebuilt.memory_mb is not None:
        function["memory"] = max(128, rebuilt.memory_mb)
    longest_s = max((i.duration_ms or 0.0 for i in rebuilt.invocations), default=0.0) / 1000
    if rebuilt.timeout_s is not None:
        function["timeout"] = max(1, rebuilt.timeout_s)
    elif longest_s > 3:
        function["timeout"] = min(900, int(longest_s) + 2)
        notes.append(f"no timeout line names the function timeout; the longest invocation took {longest_s:.2f} s, "
                     f"so timeout = {function['timeout']} (change it if you know it)")
    for key, value in (options.extra.get("function") or {}).items():
        function[key] = value
    env = {**(function.get("env") or {}), **options.env}
    if env:
        function["env"] = env
    return function


def _payloads(invocations: list[Invocation], options: Options, notes: list[str]) -> list[Any]:
    queue = list(options.events or [])
    out = []
    missing = 0
    for invocation in invocations:
        if invocation.request_id in options.events_by_id:
            out.append(options.events_by_id[invocation.request_id])
        elif queue:
            out.append(queue.pop(0))
        else:
            out.append({})
            missing += 1
    if missing and (options.events or options.events_by_id):
        notes.append(f"--events gave no payload for {missing} invocation(s): they get {{}}")
    if queue:
        notes.append(f"--events holds {len(queue)} payload(s) more than the logs hold invocations: left out")
    return out


def _production(invocation: Invocation, first: float | None) -> dict[str, Any]:
    out: dict[str, Any] = {"outcome": invocation.outcome, "request_id": invocation.request_id,
                           "environment": invocation.stream}
    if invocation.start_s is not None and first is not None:
        out["at_s"] = round(requested(invocation) - first, 3)
    if invocation.duration_ms is not None:
        out["duration_ms"] = invocation.duration_ms
    if invocation.init_ms is not None:
        out["init_duration_ms"] = invocation.init_ms
    if invocation.message:
        out["message"] = invocation.message[:300]
    return out


def _expectation(label: str, invocation: Invocation) -> dict[str, Any]:
    if invocation.outcome == "ok":
        return {"invoke": label, "ok": True}
    if invocation.outcome == "error":
        return {"invoke": label, "ok": False}
    return {"invoke": label, "error_type": invocation.outcome}


def _hidden_timeouts(gaps: list[tuple[str, float, float]], databases: dict[str, Any], options: Options) -> list[str]:
    shortened = [(label, gap, replayed) for label, gap, replayed in gaps if replayed < gap - 1e-9]
    if not shortened:
        return []
    how = " and ".join(part for part in (f"--speed {options.speed:g}" if options.speed != 1 else "",
                                          f"--max-gap {options.max_gap_s:g}" if options.max_gap_s else "") if part)
    notes = [f"{how} shortened {len(shortened)} gap(s): " +
             ", ".join(f"before {label} {gap:.1f} s → {replayed:.1f} s" for label, gap, replayed in shortened)]
    timeouts = [(name, setting, float(spec[setting])) for name, spec in databases.items() if isinstance(spec, dict)
                for setting in _IDLE_SETTINGS.get(str(spec.get("kind")), ()) if setting in spec]
    for label, gap, replayed in shortened:
        for name, setting, limit in timeouts:
            if replayed < limit <= gap:
                notes.append(f"the gap before {label} ({gap:.1f} s in production, {replayed:.1f} s replayed) is now "
                             f"shorter than {name}'s {setting} = {limit:g}: the server closed the idle connection in "
                             f"production and will not locally")
    if not timeouts:
        notes.append("no database of --with names an idle timeout to check the shortened gaps against; servers close "
                     "idle connections after MySQL's wait_timeout (28800 s by default), PostgreSQL's "
                     "idle_session_timeout (off by default), an RDS Proxy's idle client timeout (1800 s), a NAT's "
                     "idle timeout (350 s): a gap shortened below one of them hides that close")
    return notes


# ------------------------------------------------------------------------------------------------- rendering
def _value(value: Any, where: str) -> str:
    if value is None:
        raise LogsError(f"{where}: a payload holds null, which TOML cannot write; write the scenario as YAML "
                        f"(-o scenario.yaml)")
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return json.dumps(value)
    if isinstance(value, str):
        return json.dumps(value, ensure_ascii=False)
    if isinstance(value, list):
        return "[" + ", ".join(_value(item, where) for item in value) + "]"
    if isinstance(value, dict):
        items = [f"{_key(str(k))} = {_value(v, where)}" for k, v in value.items()]
        return "{ " + ", ".join(items) + " }" if items else "{}"
    raise LogsError(f"{where}: cannot write {type(value).__name__} in a scenario")


def _key(key: str) -> str:
    return key if _BARE_KEY.fullmatch(key) else json.dumps(key, ensure_ascii=False)


def _table(prefix: str, table: dict[str, Any]) -> list[str]:
    lines = [f"[{prefix}]"]
    lines += [f"{_key(k)} = {_value(v, prefix)}" for k, v in table.items()]
    return [*lines, ""]


def _render(data: dict[str, Any], comments: dict[int, str], out: Path, rebuilt: Rebuilt,
            names: dict[str, str]) -> str:
    if out.suffix in (".yaml", ".yml"):
        import yaml  # type: ignore[import-untyped]

        text: str = yaml.safe_dump(data, sort_keys=False, allow_unicode=True, width=120)
        return "# Written by `lambda-freeze scenario from-logs`.\n" + text
    lines = ["# Written by `lambda-freeze scenario from-logs`; replay it with `lambda-freeze repro`."]
    for env in rebuilt.environments:
        gaps = ", ".join("?" if g is None else f"{g:.3f} s" for g in env.gaps_s) or "none"
        lines.append(f"# {names[env.stream]}: log stream {env.stream}, {len(env.invocations)} invocation(s), "
                     f"frozen between them: {gaps}")
    lines += [f"{key} = {_value(data[key], key)}" for key in ("description", "runs", "freezer") if key in data]
    lines.append("")
    for section in ("databases", "services", "functions"):
        for name, table in data.get(section, {}).items():
            lines += _table(f"{section}.{_key(name)}", table)
    for index, step in enumerate(data["steps"]):
        action, value = next(iter(step.items()))
        comment = f"   # {comments[index]}" if index in comments else ""
        lines += ["[[steps]]", f"{action} = {_value(value, f'step {index + 1}')}{comment}", ""]
    return "\n".join(lines)


def _relocated(section: str, tables: dict[str, Any], base: Path, out_dir: Path) -> dict[str, Any]:
    """Services' working directories are relative to the file that names them: made relative to the output."""
    if section != "services":
        return tables
    moved = {}
    for name, spec in tables.items():
        spec = dict(spec)
        spec["cwd"] = os.path.relpath((base / spec.get("cwd", ".")).resolve(), out_dir.resolve())
        moved[name] = spec
    return moved


def _check(text: str, out: Path) -> None:
    """The scenario must be one ``repro`` runs: the loader checks it as it would the file."""
    if out.suffix in (".yaml", ".yml"):
        import yaml

        data = yaml.safe_load(text)
    else:
        data = tomllib.loads(text)
    try:
        validate(data, out)
    except ScenarioError as exc:
        raise LogsError("the scenario written would not load:\n" + "\n".join(exc.problems)) from None

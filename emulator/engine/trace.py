"""Renderings of a timeline: the Chrome trace event format (Perfetto, chrome://tracing) and a compact text view.

Both read the same records (``emulator.timeline``): ``spawn`` / ``state`` / ``retire`` / ``stopped`` of each
execution environment, ``invoke`` outcomes, ``async`` deliveries, ``leak`` findings, the fault proxy's ``proxy``
records, and a scenario's ``step``, ``run`` and ``service`` records. Times are the timeline's monotonic clock.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .lifecycle import State
from .timeline import Timeline, TimelineEvent

# Lifecycle states as the inspection API names them: "responded" is still part of the invocation.
_PUBLIC = {state.value: state.public for state in State}
_WHO = {"upstream": "the server", "client": "the function", "proxy": "the proxy"}
# Proxy records that only add noise to a picture of the connections (the port and the upstream's side opening).
_QUIET_PROXY = frozenset({"listen", "unlisten", "upstream"})


def _events(timeline: Timeline | Iterable[TimelineEvent]) -> list[TimelineEvent]:
    events = list(timeline.events) if isinstance(timeline, Timeline) else list(timeline)
    return sorted(events, key=lambda e: e.monotonic_s)


def _start(event: TimelineEvent) -> float:
    """When the recorded thing began: steps and runs are recorded at their end, with their start in the detail."""
    started = event.detail.get("started_s")
    return float(started) if isinstance(started, int | float) else event.monotonic_s


def _connection(detail: dict[str, Any]) -> str:
    """``DB#2``: the upstream's name and the connection's number on its environment's port."""
    upstream = str(detail.get("proxy", "proxy")).rsplit("/", 1)[-1]
    return f"{upstream}#{str(detail.get('conn_id', '?')).rsplit('#', 1)[-1]}"


def _outcome(detail: dict[str, Any]) -> str:
    return "ok" if detail.get("error_type") is None else str(detail["error_type"])


def _proxy_kind(detail: dict[str, Any]) -> str:
    """What a proxy record says happened (``connect``, ``close``, ``fired``, ...; emulator.proxy.EventKind)."""
    return str(detail.get("event", detail.get("kind", "")))


def _proxy_text(detail: dict[str, Any]) -> str | None:
    """One line about a proxy record, or None for records that do not belong in a compact picture."""
    kind = _proxy_kind(detail)
    conn = _connection(detail)
    toxic = f" [{detail['toxic']}]" if detail.get("toxic") else ""
    if kind == "connect":
        return f"{conn} connected"
    if kind == "close":
        if detail.get("by") == "proxy" and detail.get("detail") == "mirror":
            return None  # the proxy passing on the other side's close
        how = str(detail.get("how", "?"))
        if detail.get("by") == "proxy":
            how += f", {detail.get('side')} side"
        return f"{conn} closed by {_WHO.get(str(detail.get('by')), detail.get('by'))} ({how})"
    if kind in ("fired", "held", "released", "dropped"):
        size = f", {detail['nbytes']} bytes" if detail.get("nbytes") else ""
        note = f": {detail['detail']}" if detail.get("detail") else ""
        return f"{conn} {kind}{toxic}{size}{note}"
    if kind in ("refused", "connect_failed"):
        return f"{conn} {kind.replace('_', ' ')}{toxic}: {detail.get('detail', '')}"
    if kind == "toxic_added":
        return f"toxic {detail.get('toxic')} added ({detail.get('direction')}): {detail.get('detail', '')}"
    if kind == "toxic_removed":
        return f"toxic {detail.get('toxic')} removed"
    return None


# --------------------------------------------------------------------------------------------- Chrome trace
@dataclass
class _Tracks:
    """pids (one per function, one for the scenario) and tids (one per environment), with their metadata."""

    pids: dict[str, int] = field(default_factory=dict)
    tids: dict[tuple[int, str], int] = field(default_factory=dict)
    metadata: list[dict[str, Any]] = field(default_factory=list)

    def pid(self, process: str) -> int:
        if process not in self.pids:
            self.pids[process] = len(self.pids) + 1
            pid = self.pids[process]
            self.metadata.append({"ph": "M", "name": "process_name", "pid": pid, "tid": 0, "args": {"name": process}})
            self.metadata.append({"ph": "M", "name": "process_sort_index", "pid": pid, "tid": 0,
                                  "args": {"sort_index": pid}})
        return self.pids[process]

    def track(self, process: str, thread: str) -> tuple[int, int]:
        pid = self.pid(process)
        if (pid, thread) not in self.tids:
            tid = len([key for key in self.tids if key[0] == pid]) + 1
            self.tids[(pid, thread)] = tid
            self.metadata.append({"ph": "M", "name": "thread_name", "pid": pid, "tid": tid, "args": {"name": thread}})
            self.metadata.append({"ph": "M", "name": "thread_sort_index", "pid": pid, "tid": tid,
                                  "args": {"sort_index": tid}})
        return pid, self.tids[(pid, thread)]


def chrome_trace(timeline: Timeline | Iterable[TimelineEvent]) -> dict[str, Any]:
    """The timeline as a Chrome trace object: ``{"traceEvents": [...], "displayTimeUnit": "ms", ...}``."""
    events = _events(timeline)
    tracks = _Tracks()
    out: list[dict[str, Any]] = []
    if not events:
        return {"traceEvents": [], "displayTimeUnit": "ms", "otherData": {"generator": "lambda-freeze"}}
    t0 = min(_start(e) for e in events)
    end = events[-1].monotonic_s

    def us(t: float) -> float:
        return round((t - t0) * 1e6, 3)

    def duration(start: float, end: float) -> float:
        return round(max(us(end) - us(start), 0.001), 3)

    if any(e.kind in ("step", "run") for e in events):
        tracks.track("scenario", "steps")  # the scenario's steps on top, the functions below
    owner: dict[str, str] = {}  # environment -> function
    for e in events:
        if "function" in e.detail and e.kind in ("spawn", "state", "retire", "stopped", "invoke"):
            owner.setdefault(e.subject, str(e.detail["function"]))
        elif e.kind == "proxy" and e.detail.get("env_id"):
            owner.setdefault(e.subject, str(e.detail.get("proxy", "")).split("/")[0])

    def env_track(env: str) -> tuple[int, int]:
        return tracks.track(owner.get(env, env), env)

    def instant(track: tuple[int, int], t: float, name: str, cat: str, args: dict[str, Any]) -> None:
        out.append({"ph": "i", "s": "t", "name": name, "cat": cat, "ts": us(t), "pid": track[0], "tid": track[1],
                    "args": args})

    open_states: dict[str, tuple[str, float, dict[str, Any]]] = {}

    def close_state(env: str, t: float) -> None:
        current = open_states.pop(env, None)
        if current is not None and t > current[1]:  # a state left at once says nothing a slice could show
            name, start, args = current
            pid, tid = env_track(env)
            out.append({"ph": "X", "name": name, "cat": "state", "ts": us(start), "dur": duration(start, t),
                        "pid": pid, "tid": tid, "args": args})

    for e in events:
        t, d = e.monotonic_s, e.detail
        if e.kind == "spawn":
            open_states[e.subject] = ("initializing", t, {"reason": d.get("reason")})
            instant(env_track(e.subject), t, f"spawn ({d.get('reason', '')})", "environment", dict(d))
        elif e.kind == "state":
            name = _PUBLIC.get(str(d.get("new")), str(d.get("new")))
            current = open_states.get(e.subject)
            if current is not None and current[0] == name:
                continue  # responded: still the same invocation
            close_state(e.subject, t)
            if name != "stopped":
                open_states[e.subject] = (name, t, {"event": d.get("event")})
        elif e.kind == "invoke":
            current = open_states.get(e.subject)
            if current is not None and current[0] == "invoking":
                current[2].update(request_id=d.get("request_id"), outcome=_outcome(d))
            instant(env_track(e.subject), t, f"{_outcome(d)} {d.get('request_id', '')}", "invocation", dict(d))
        elif e.kind in ("stopped", "retire"):
            if e.kind == "stopped":
                close_state(e.subject, t)
            instant(env_track(e.subject), t, e.kind, "environment", dict(d))
        elif e.kind == "proxy":
            track = env_track(e.subject) if d.get("env_id") else tracks.track(e.subject, "proxy")
            kind = _proxy_kind(d)
            if kind == "connect" and d.get("conn_id"):
                out.append({"ph": "b", "name": _connection(d), "cat": "connection", "id": str(d["conn_id"]),
                            "ts": us(t), "pid": track[0], "tid": track[1], "args": dict(d)})
            elif kind == "closed" and d.get("conn_id"):
                out.append({"ph": "e", "name": _connection(d), "cat": "connection", "id": str(d["conn_id"]),
                            "ts": us(t), "pid": track[0], "tid": track[1], "args": dict(d)})
            if kind not in _QUIET_PROXY and kind != "connect":
                text = _proxy_text(d) or f"{_connection(d)} {kind}"
                instant(track, t, text, "proxy", dict(d))
        elif e.kind == "service":  # a scenario's service process: its start, readiness, output and end
            instant(tracks.track("services", e.subject), t, str(d.get("text", d.get("what", ""))), "service", dict(d))
        elif e.kind in ("step", "run"):
            pid, tid = tracks.track("scenario", "runs" if e.kind == "run" else "steps")
            start = _start(e)
            name = f"run {d.get('run')}" if e.kind == "run" else str(d.get("label", "step"))
            out.append({"ph": "X", "name": name, "cat": e.kind, "ts": us(start),
                        "dur": duration(start, t), "pid": pid, "tid": tid, "args": dict(d)})
        else:  # async deliveries, leaks, and whatever else the engine records
            track = env_track(e.subject) if e.subject in owner else tracks.track(e.subject, e.kind)
            instant(track, t, f"{e.kind} {d.get('what', '')}".strip(), e.kind, dict(d))
    for env in list(open_states):
        close_state(env, end)
    out.sort(key=lambda event: event["ts"])
    return {
        "traceEvents": tracks.metadata + out,
        "displayTimeUnit": "ms",
        "otherData": {"generator": "lambda-freeze", "clock": "monotonic", "wall_start_s": events[0].at_s},
    }


def write_chrome_trace(timeline: Timeline | Iterable[TimelineEvent], path: str | Path) -> None:
    """Write the timeline as a Chrome trace JSON file (open it in https://ui.perfetto.dev or chrome://tracing)."""
    Path(path).write_text(json.dumps(chrome_trace(timeline), default=str))


# ------------------------------------------------------------------------------------------------- text view
_LANE = {"initializing": "I", "invoking": "#", "ready": "-", "frozen": "."}
LEGEND = "I INIT  # invoking  - ready  . frozen  x closed by the server  ! invocation failed"


@dataclass
class _Env:
    state: str = "initializing"
    changed_s: float = 0.0
    slices: list[tuple[str, float, float]] = field(default_factory=list)
    marks: list[tuple[float, str]] = field(default_factory=list)
    closed_while_frozen: list[tuple[str, float]] = field(default_factory=list)  # since the last freeze began


def text_timeline(timeline: Timeline | Iterable[TimelineEvent], *, width: int = 60, max_lines: int = 200) -> str:
    """A compact rendering: one lane per environment, then the events that matter, one per line.

    A connection the server closed while its environment was frozen is marked as such, and so is the first
    invocation after the thaw that used (and failed on) it.
    """
    events = [e for e in _events(timeline) if e.kind != "run"]
    if not events:
        return "(no events)"
    t0 = min(_start(e) for e in events)
    end = max(e.monotonic_s for e in events)
    envs: dict[str, _Env] = {}
    lines: list[tuple[float, str, str]] = []

    def note(t: float, who: str, text: str) -> None:
        lines.append((t, who, text))

    def rel(t: float) -> str:
        return f"+{t - t0:.3f}s"

    for e in events:
        t, d = e.monotonic_s, e.detail
        env = envs.get(e.subject)
        if e.kind == "spawn":
            envs[e.subject] = _Env(changed_s=t)
            note(t, e.subject, f"spawned ({d.get('reason', '')}), INIT")
        elif e.kind == "state" and env is not None:
            new = _PUBLIC.get(str(d.get("new")), str(d.get("new")))
            if new == env.state:
                continue
            old, since = env.state, env.changed_s
            env.slices.append((old, since, t))
            env.state, env.changed_s = new, t
            if new == "ready" and old == "initializing":
                note(t, e.subject, f"ready (INIT {1000 * (t - since):.0f} ms)")
            elif new == "invoking":
                thawed = f"thawed after {t - since:.3f} s frozen, " if old == "frozen" else ""
                note(t, e.subject, f"{thawed}invoking")
            elif new == "frozen":
                env.closed_while_frozen.clear()
                note(t, e.subject, "frozen")
            elif new == "stopped":
                note(t, e.subject, "stopping")
        elif e.kind == "invoke":
            message = f": {d['message']}" if d.get("message") else ""
            if len(message) > 90:
                message = message[:89] + "…"
            note(t, e.subject, f"invoke {str(d.get('request_id', ''))[:8]} → {_outcome(d)}{message}")
            if env is not None:
                env.marks.append((t, "#" if d.get("error_type") is None else "!"))
                for conn, closed_s in env.closed_while_frozen:
                    if d.get("error_type") is not None:
                        note(t, "", f"↳ first use after thaw: {conn} was closed by the server at {rel(closed_s)} "
                                    f"while {e.subject} was frozen")
                    else:
                        note(t, "", f"↳ {conn} was closed by the server at {rel(closed_s)} while {e.subject} was "
                                    "frozen; this invocation still succeeded")
                env.closed_while_frozen.clear()
        elif e.kind == "proxy":
            text = None if _proxy_kind(d) in _QUIET_PROXY else _proxy_text(d)
            if text is None:
                continue
            server_close = _proxy_kind(d) == "close" and d.get("by") == "upstream"
            if server_close and env is not None and env.state != "stopped":  # not the goodbye of a shutdown
                env.marks.append((t, "x"))
                if env.state == "frozen":
                    env.closed_while_frozen.append((_connection(d), t))
                    text += f" while {e.subject} was frozen"
            note(t, e.subject, text)
        elif e.kind == "stopped":
            if env is not None and env.state != "stopped":
                env.slices.append((env.state, env.changed_s, t))
                env.state, env.changed_s = "stopped", t
            status = f" ({d['exit_status']})" if d.get("exit_status") else ""
            note(t, e.subject, f"stopped{status}")
        elif e.kind == "retire":
            note(t, e.subject, f"retired ({d.get('reason', '')})")
        elif e.kind == "virtual_gap":
            gap, total = d.get("gap_s", 0), d.get("offset_s", 0)
            note(t, e.subject, f"clocks moved {gap:g} s while frozen (virtual time +{total:g} s)")
        elif e.kind == "step":
            # A scenario written from logs says what the invocation did in production: both, side by side.
            versus = f" → {d.get('outcome')} (production: {d['production']})" if d.get("production") else ""
            note(_start(e), "scenario", f"{d.get('label', 'step')}{versus}")
        elif e.kind == "service":
            note(t, e.subject, str(d.get("text", d.get("what", ""))))
        elif e.kind == "leak":
            note(t, e.subject, f"LEAK {str(d.get('request_id', ''))[:8]}: {d.get('value')!r} in the {d.get('where')}")
        elif e.kind == "async":
            note(t, e.subject, f"async {str(d.get('request_id', ''))[:8]} {d.get('what', '')}")
    for env in envs.values():
        if env.state != "stopped":
            env.slices.append((env.state, env.changed_s, end))
    return "\n".join([*_lanes(envs, t0, end, width), "", *_event_lines(lines, t0, max_lines)])


def _lanes(envs: dict[str, _Env], t0: float, end: float, width: int) -> list[str]:
    span = max(end - t0, 1e-6)
    name_width = max((len(name) for name in envs), default=3)
    out = [f"{'':<{name_width}}  0s{'':<{width - 2 - len(f'{span:.2f}s')}}{span:.2f}s"]
    for name, env in envs.items():
        lane = []
        for column in range(width):
            t = t0 + (column + 0.5) * span / width
            lane.append(next((_LANE.get(s, " ") for s, a, b in env.slices if a <= t < b), " "))
        for t, mark in sorted(env.marks, key=lambda m: m[1] == "!"):  # a failure wins its column
            column = min(int((t - t0) / span * width), width - 1)
            if lane[column] != "!":
                lane[column] = mark
        out.append(f"{name:<{name_width}}  {''.join(lane)}")
    out.append(f"{'':<{name_width}}  {LEGEND}")
    return out


def _event_lines(lines: list[tuple[float, str, str]], t0: float, max_lines: int) -> list[str]:
    lines.sort(key=lambda line: line[0])  # stable: an annotation stays under its line
    who_width = max((len(who) for _, who, _ in lines), default=0)
    out = [f"{f'+{t - t0:.3f}s':>9}  {who:<{who_width}}  {text}" if who else f"{'':>9}  {'':<{who_width}}  {text}"
           for t, who, text in lines[:max_lines]]
    if len(lines) > max_lines:
        out.append(f"… {len(lines) - max_lines} more (write the whole timeline with --trace FILE)")
    return out

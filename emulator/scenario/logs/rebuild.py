"""Rebuilding each execution environment's timeline (one per log stream) from the log records: cold start, every
invocation's start, duration, memory and outcome, and the time frozen between invocations."""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from .lines import LogLine, LogsError
from .records import Record, classify

TIMED_OUT = "Sandbox.Timedout"  # the errorType the emulator (and Lambda's Invoke API) gives a timeout


@dataclass
class Invocation:
    request_id: str
    stream: str
    start: LogLine
    start_s: float | None = None
    duration_ms: float | None = None
    billed_ms: float | None = None
    memory_mb: int | None = None
    max_memory_mb: int | None = None
    init_ms: float | None = None  # a cold start's Init Duration
    outcome: str = "ok"  # "ok", an errorType, "error" (failed, type unknown)
    message: str = ""
    timeout_s: float | None = None  # "Task timed out after N seconds"
    reported: bool = False

    @property
    def end_s(self) -> float | None:
        if self.start_s is None or self.duration_ms is None:
            return None
        return self.start_s + self.duration_ms / 1000

    def fail(self, error_type: str | None, message: str = "") -> None:
        """The first precise failure wins; a timeout wins over the errors the runtime logged before it."""
        if error_type == TIMED_OUT or self.outcome in ("ok", "error"):
            self.outcome = error_type or "error"
            self.message = message or self.message


@dataclass
class Environment:
    stream: str
    invocations: list[Invocation] = field(default_factory=list)

    @property
    def gaps_s(self) -> list[float | None]:
        """The time frozen before each invocation after the first (None when the logs carry no times)."""
        out: list[float | None] = []
        for before, after in zip(self.invocations, self.invocations[1:], strict=False):
            end = before.end_s
            out.append(None if end is None or after.start_s is None else max(0.0, after.start_s - end))
        return out


@dataclass
class Rebuilt:
    environments: list[Environment]
    function: str | None  # the function's name, from the log group
    ignored: list[str]  # places of lines that belong to no invocation and say nothing about one

    @property
    def invocations(self) -> list[Invocation]:
        everything = [i for env in self.environments for i in env.invocations]
        return sorted(everything, key=lambda i: (i.start_s is None, i.start_s or 0.0))

    @property
    def memory_mb(self) -> int | None:
        return next((i.memory_mb for i in self.invocations if i.memory_mb), None)

    @property
    def timeout_s(self) -> int | None:
        """The function timeout a "Task timed out after N.NN seconds" line names (N.NN is a little past it)."""
        named = [i.timeout_s for i in self.invocations if i.timeout_s is not None]
        return math.floor(max(named) + 0.001) if named else None


def _function(lines: list[LogLine], wanted: str | None) -> tuple[list[LogLine], str | None]:
    groups = sorted({line.group for line in lines if line.group})
    if wanted is not None:
        chosen = [g for g in groups if g == wanted or g.rsplit("/", 1)[-1] == wanted]
        if groups and not chosen:
            raise LogsError(f"--function-name {wanted}: the logs hold {', '.join(groups)}")
        keep = set(chosen)
        return [line for line in lines if line.group is None or line.group in keep], wanted
    if len(groups) > 1:
        first = {g: next(line.where for line in lines if line.group == g) for g in groups}
        named = "; ".join(f"{g} (first at {w})" for g, w in first.items())
        raise LogsError(f"the logs mix {len(groups)} functions: {named}; pick one with --function-name NAME")
    return lines, groups[0].rsplit("/", 1)[-1] if groups else None


def rebuild(lines: list[LogLine], *, streams: list[str] | None = None, function_name: str | None = None) -> Rebuilt:
    lines, function = _function(lines, function_name)
    by_stream: dict[str, list[LogLine]] = {}
    for line in lines:
        # No stream (pasted lines, get-log-events): each file is one environment.
        by_stream.setdefault(line.stream or line.file, []).append(line)
    if streams:
        unknown = [s for s in streams if s not in by_stream]
        if unknown:
            raise LogsError(f"--log-stream {', '.join(unknown)}: not in the logs; streams: {', '.join(by_stream)}")
        by_stream = {s: by_stream[s] for s in streams}
    environments: list[Environment] = []
    ignored: list[str] = []
    for stream, stream_lines in by_stream.items():
        if all(line.time_s is not None for line in stream_lines):
            stream_lines = sorted(stream_lines, key=lambda line: line.time_s or 0.0)  # several files, one stream
        env = _environment(stream, stream_lines, ignored)
        if env.invocations:
            environments.append(env)
    _one_configuration(environments)
    if not environments:
        raise LogsError(f"no invocation found: no START/REPORT line (text format) or platform.start/platform.report "
                        f"record (JSON format) in {', '.join(sorted({line.file for line in lines})) or 'the input'}")
    environments.sort(key=lambda env: (env.invocations[0].start_s is None, env.invocations[0].start_s or 0.0))
    return Rebuilt(environments, function, ignored)


def _environment(stream: str, lines: list[LogLine], ignored: list[str]) -> Environment:
    env = Environment(stream)
    known: dict[str, Invocation] = {}
    current: Invocation | None = None
    for line in lines:
        record = classify(line)
        if record.kind == "start":
            assert record.request_id is not None
            if current is not None and not current.reported:
                mixed = "" if line.stream else (
                    "; or they are the lines of several environments without their log streams: copy them with "
                    "the stream (Logs Insights: fields @timestamp, @logStream, @message)")
                raise LogsError(f"{line.where}: START of {record.request_id} while {current.request_id} (started at "
                                f"{current.start.where}) has no REPORT: the logs are cut; paste its REPORT line{mixed}")
            current = Invocation(record.request_id, stream, line, line.time_s)
            known[record.request_id] = current
            env.invocations.append(current)
            continue
        target = known.get(record.request_id) if record.request_id else current
        if record.request_id and target is None:
            what = {"end": "END", "report": "REPORT"}.get(record.kind, "this line")
            raise LogsError(f"{line.where}: {what} belongs to no invocation: request {record.request_id} has no START "
                            f"line in stream {stream}; add its START line, or leave out every line of that request")
        if target is None or (record.request_id is None and target.reported and record.kind != "timeout"):
            if record.kind not in ("init",):
                ignored.append(line.where)  # INIT-phase output, extension lines, stray text: said and counted
            continue
        _apply(target, record)
    if current is not None and not current.reported:
        raise LogsError(f"{current.start.where}: {current.request_id} has no REPORT line: the logs are cut; paste "
                        f"its END and REPORT lines, or leave out every line of that request")
    return env


def _apply(invocation: Invocation, record: Record) -> None:
    if record.kind == "report":
        m = record.metrics
        invocation.reported = True
        invocation.duration_ms = m.get("durationMs")
        invocation.billed_ms = m.get("billedDurationMs")
        invocation.memory_mb = int(m["memorySizeMB"]) if "memorySizeMB" in m else None
        invocation.max_memory_mb = int(m["maxMemoryUsedMB"]) if "maxMemoryUsedMB" in m else None
        invocation.init_ms = m.get("initDurationMs")
        if invocation.start_s is None and record.line.time_s is not None and invocation.duration_ms is not None:
            invocation.start_s = record.line.time_s - invocation.duration_ms / 1000  # pasted START lines carry no time
        if record.status == "timeout":
            invocation.fail(TIMED_OUT)
        elif record.status in ("error", "failure"):
            invocation.fail(record.error_type)
    elif record.kind == "timeout":
        invocation.timeout_s = float(record.message)
        invocation.fail(TIMED_OUT, f"Task timed out after {record.message} seconds")
    elif record.kind == "error":
        invocation.fail(record.error_type, record.message)
    elif record.kind == "log" and record.status in ("error", "failure", "timeout"):  # platform.runtimeDone
        invocation.fail(TIMED_OUT if record.status == "timeout" else record.error_type)


def _one_configuration(environments: list[Environment]) -> None:
    """Streams of one function share its memory size: different sizes mean two functions (or a change) mixed."""
    sizes: dict[int, str] = {}
    for env in environments:
        for invocation in env.invocations:
            if invocation.memory_mb is not None:
                sizes.setdefault(invocation.memory_mb, env.stream)
    if len(sizes) > 1:
        named = "; ".join(f"{size} MB in stream {stream}" for size, stream in sizes.items())
        raise LogsError(f"the logs mix functions (or configurations): {named}; pick the streams of one with "
                        f"--log-stream STREAM (repeatable) or --function-name NAME")

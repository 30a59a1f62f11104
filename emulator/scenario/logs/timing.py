"""When the replayed invocations start: one after the other with the frozen gaps between them as ``stay_frozen``
steps, or, when production's invocations overlapped (several environments at once), each at its offset (``at``),
behind the one its environment served before it (``after``)."""

from __future__ import annotations

from typing import Any

from .rebuild import Invocation, Rebuilt

MIN_GAP_S = 0.001  # shorter gaps are back-to-back invocations: no stay_frozen step
Steps = tuple[list[dict[str, Any]], dict[int, str], list[tuple[str, float, float]]]  # steps, comments, gaps


def requested(invocation: Invocation) -> float:
    """When the invocation was asked for: its START, less the Init Duration of a cold start (INIT comes first)."""
    assert invocation.start_s is not None
    return invocation.start_s - (invocation.init_ms or 0.0) / 1000


def replayed_gap(gap_s: float, speed: float, max_gap_s: float | None) -> float:
    """An idle gap divided by ``--speed`` and capped at ``--max-gap``."""
    replayed = gap_s / speed
    return replayed if max_gap_s is None else min(replayed, max_gap_s)


def overlapping(rebuilt: Rebuilt) -> str | None:
    """What shows that invocations ran at once (on several environments), or None when they ran one at a time."""
    if any(i.start_s is None or i.end_s is None for i in rebuilt.invocations):
        return None  # no times: the order is all there is
    busy: Invocation | None = None
    for invocation in sorted(rebuilt.invocations, key=requested):
        if busy is not None and busy.end_s is not None and requested(invocation) < busy.end_s - MIN_GAP_S:
            return (f"{invocation.request_id} ({invocation.start.where}) started while {busy.request_id} "
                    f"({busy.start.where}) was running on another environment")
        if busy is None or (invocation.end_s or 0.0) > (busy.end_s or 0.0):
            busy = invocation
    return None


def sequential_steps(rebuilt: Rebuilt, speed: float, max_gap_s: float | None, labels: dict[int, str]
                     ) -> Steps:
    """One invocation after the other, the frozen time between one's end and the next one's start a ``stay_frozen``:
    the gaps come back whatever the local durations. A cold start on an environment of its own counts from when it
    was asked for (its INIT came first), so that its INIT here begins when production's did."""
    steps: list[dict[str, Any]] = []
    comments: dict[int, str] = {}  # step index -> comment
    gaps: list[tuple[str, float, float]] = []  # (step name, production s, replayed s)
    previous_end: float | None = None
    for invocation in rebuilt.invocations:
        label = labels[id(invocation)]
        if invocation.start_s is not None and previous_end is not None:
            gap = requested(invocation) - previous_end
            if gap >= MIN_GAP_S:
                replayed = replayed_gap(gap, speed, max_gap_s)
                gaps.append((label, gap, replayed))
                began = "INIT" if invocation.init_ms else "START"
                comments[len(steps)] = f"production: {gap:.3f} s from the last invocation's end to this one's {began}"
                steps.append({"stay_frozen": round(max(replayed, MIN_GAP_S), 3)})
        if invocation.end_s is not None:
            previous_end = invocation.end_s if previous_end is None else max(previous_end, invocation.end_s)
        steps.append({"invoke": {"as": label}})
    return steps, comments, gaps


def concurrent_steps(rebuilt: Rebuilt, speed: float, max_gap_s: float | None, labels: dict[int, str]
                     ) -> Steps:
    """Invocations that overlapped: each started at its offset (``at``), the idle stretches in which no
    environment was busy shortened by ``--speed``/``--max-gap``, and each after the invocation its environment
    served before it (``after``), so that a slower local run never hands it to another environment."""
    ordered = sorted(rebuilt.invocations, key=requested)
    origin = requested(ordered[0])
    shift = 0.0  # seconds taken out of the idle stretches so far
    busy_until: float | None = None
    offsets: dict[int, float] = {}
    shifts: dict[int, float] = {}
    for invocation in ordered:
        asked = requested(invocation)
        if busy_until is not None and asked - busy_until >= MIN_GAP_S:
            idle = asked - busy_until
            shift += idle - replayed_gap(idle, speed, max_gap_s)
        offsets[id(invocation)] = round(max(0.0, asked - origin - shift), 3)
        shifts[id(invocation)] = shift
        end = invocation.end_s or asked
        busy_until = end if busy_until is None else max(busy_until, end)
    steps: list[dict[str, Any]] = []
    comments: dict[int, str] = {}
    gaps: list[tuple[str, float, float]] = []
    before: dict[str, Invocation] = {}  # stream -> the invocation it served last
    for invocation in ordered:
        label = labels[id(invocation)]
        invoke: dict[str, Any] = {"as": label, "at": offsets[id(invocation)]}
        previous = before.get(invocation.stream)
        comment = f"production: requested at +{requested(invocation) - origin:.3f} s"
        if previous is not None:
            invoke["after"] = labels[id(previous)]
            gap = max(0.0, (invocation.start_s or 0.0) - (previous.end_s or 0.0))
            replayed = max(0.0, gap - (shifts[id(invocation)] - shifts[id(previous)]))
            gaps.append((label, gap, replayed))
            comment += f", {gap:.3f} s after {labels[id(previous)]} on its environment"
        before[invocation.stream] = invocation
        comments[len(steps)] = comment
        steps.append({"invoke": invoke})
    return steps, comments, gaps

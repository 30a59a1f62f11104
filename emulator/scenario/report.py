"""The report of a scenario's runs: how often the expected outcome held, per-step outcomes, a timeline; text or JSON."""

from __future__ import annotations

import dataclasses
import statistics
from dataclasses import dataclass, field
from typing import Any

from .model import Scenario
from .runner import RunResult


def _ms(value: float) -> str:
    return f"{value / 1000:.2f} s" if value >= 10_000 else f"{value:.1f} ms" if value < 10 else f"{value:.0f} ms"


@dataclass
class Report:
    scenario: Scenario
    results: list[RunResult]
    elapsed_s: float = 0.0
    steps: list[dict[str, Any]] = field(init=False)

    def __post_init__(self) -> None:
        self.steps = []
        for index, step in enumerate(self.scenario.steps):
            done = [r.steps[index] for r in self.results if len(r.steps) > index]
            outcomes: dict[str, int] = {}
            for result in done:
                outcomes[result.outcome] = outcomes.get(result.outcome, 0) + 1
            durations = [result.duration_ms for result in done]
            starts = [result.at_s for result in done if result.at_s is not None and result.outcome != "not started"]
            self.steps.append({
                "step": step.number, "label": step.label, "action": step.action, "line": step.line,
                "outcomes": outcomes, "runs": len(done),
                "p50_ms": round(statistics.median(durations), 3) if durations else None,
                "max_ms": round(max(durations), 3) if durations else None,
                "at_p50_s": round(statistics.median(starts), 3) if starts else None,  # after the first step started
                **({"production": dict(step.production)} if step.production else {}),
            })

    @property
    def reproduced(self) -> int:
        return sum(1 for result in self.results if result.reproduced)

    @property
    def passed(self) -> bool:
        return bool(self.results) and self.reproduced >= self.scenario.required_fraction * len(self.results) - 1e-9

    @property
    def shown(self) -> RunResult | None:
        """The run whose timeline is shown: the first where the expectation did not hold, else the last."""
        return next((r for r in self.results if not r.reproduced), self.results[-1] if self.results else None)

    def _required(self) -> str:
        fraction = self.scenario.required_fraction
        return "all" if fraction >= 1 else f"{fraction:.0%}"

    def render(self) -> str:
        from ..engine.trace import text_timeline

        freezers = ", ".join(sorted({r.freezer for r in self.results})) or "-"
        head = [f"lambda-freeze repro {self.scenario.path} (freezer {freezers}, {len(self.results)} run(s), "
                f"{self.elapsed_s:.1f} s)"]
        head += [f"  {line}" for line in self.scenario.description.strip().splitlines()]
        verdict = "the expected outcome held" if self.passed else "fewer runs than required"
        head += ["", f"reproduced {self.reproduced}/{len(self.results)} (required: {self._required()}): {verdict}", ""]
        rows = [("step", "outcomes", "p50", "max")]
        for step in self.steps:
            outcomes = ", ".join(f"{name} {count}/{step['runs']}" for name, count in step["outcomes"].items())
            timed = step["action"] not in ("expect",) and step["p50_ms"] is not None
            rows.append((step["label"], outcomes or "not reached",
                         _ms(step["p50_ms"]) if timed else "", _ms(step["max_ms"]) if timed else ""))
        widths = [max(len(row[i]) for row in rows) for i in range(4)]
        table = [f"{a:<{widths[0]}}  {b:<{widths[1]}}  {c:>{widths[2]}}  {d:>{widths[3]}}".rstrip()
                 for a, b, c, d in rows]
        table += self._versus()
        failures = [f"run {r.number}: {r.failure}" for r in self.results if not r.reproduced]
        if failures:
            table += ["", *failures[:5], *([f"… and {len(failures) - 5} more"] if len(failures) > 5 else [])]
        shown = self.shown
        if shown is not None:
            which = "the last run" if shown.reproduced else "the first run where the expectation did not hold"
            table += ["", f"timeline of run {shown.number} ({which}):", text_timeline(shown.events)]
        return "\n".join(head + table)

    def _versus(self) -> list[str]:
        """Scenarios written from logs: each invocation's outcome in production beside its outcomes here."""
        rows = [("invocation", "production", "local")]
        for step in self.steps:
            production = step.get("production")
            if production:
                where = f" at +{production['at_s']:.3f} s" if "at_s" in production else ""
                local = ", ".join(f"{name} {count}/{step['runs']}" for name, count in step["outcomes"].items())
                # The local start (p50 over the runs), beside production's: concurrent invocations show as such.
                when = f" at +{step['at_p50_s']:.3f} s" if step.get("at_p50_s") is not None else ""
                rows.append((step["label"], f"{production['outcome']}{where}", f"{local}{when}" if local
                             else "not reached"))
        if len(rows) == 1:
            return []
        widths = [max(len(row[i]) for row in rows) for i in range(2)]
        return ["", *(f"{a:<{widths[0]}}  {b:<{widths[1]}}  {c}".rstrip() for a, b, c in rows)]

    def as_dict(self) -> dict[str, Any]:
        from ..engine.trace import text_timeline

        shown = self.shown
        return {
            "scenario": str(self.scenario.path),
            "description": self.scenario.description,
            "runs": len(self.results),
            "reproduced": self.reproduced,
            "required_fraction": self.scenario.required_fraction,
            "passed": self.passed,
            "elapsed_s": round(self.elapsed_s, 3),
            "steps": self.steps,
            "results": [
                {"run": r.number, "reproduced": r.reproduced, "freezer": r.freezer, "failure": r.failure,
                 # a step's abort is the run's "failure" already
                 "steps": [{k: v for k, v in dataclasses.asdict(s).items() if k != "aborted"} for s in r.steps]}
                for r in self.results
            ],
            "timeline_run": shown.number if shown else None,
            "timeline": text_timeline(shown.events) if shown else None,
        }

"""The ``lambda-freeze repro`` command: its arguments, the progress shown while it runs, and its exit status."""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import TextIO

from ..engine.freezer import CHOICES
from ..errors import LambdaFreezeError
from .load import load
from .logs.record import TailRecorder
from .model import DEFAULT_RUNS, ScenarioError
from .report import Report
from .runner import RunResult, run_scenario


class _Progress:
    """A bar on a terminal, a line per run otherwise."""

    def __init__(self, name: str, total: int, stream: TextIO):
        self.name = name
        self.total = total
        self.stream = stream
        self.tty = stream.isatty()
        self.done = 0
        self.reproduced = 0
        self._draw()

    def _draw(self) -> None:
        if self.tty:
            width = 24
            filled = width * self.done // max(self.total, 1)
            self.stream.write(f"\r{self.name} [{'#' * filled}{'.' * (width - filled)}] {self.done}/{self.total} runs,"
                              f" reproduced {self.reproduced}\x1b[K")
            self.stream.flush()

    def __call__(self, result: RunResult) -> None:
        self.done += 1
        self.reproduced += result.reproduced
        if self.tty:
            self._draw()
        else:
            what = "reproduced" if result.reproduced else f"not reproduced: {result.failure}"
            print(f"run {result.number}/{self.total}: {what}", file=self.stream, flush=True)

    def close(self) -> None:
        if self.tty:
            self.stream.write("\r\x1b[K")
            self.stream.flush()


def _positive(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError("must be 1 or more")
    return value


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """``lambda-freeze repro FILE [--runs N] [--json] [--trace FILE] [--freezer X]``."""
    parser.add_argument("file", type=Path, help="scenario file (TOML; YAML too when PyYAML is installed)")
    parser.add_argument("--runs", type=_positive, help=f"replay it N times (default: the file's runs, else "
                        f"{DEFAULT_RUNS})")
    parser.add_argument("--json", action="store_true", help="print a machine-readable report instead of the table")
    parser.add_argument("--trace", type=Path, help="write the timeline of every run here (Chrome trace event format)")
    parser.add_argument("--freezer", choices=CHOICES, help="freezer backend of every function (overrides the file)")
    parser.add_argument("--record-logs", type=Path, metavar="FILE", help="write the functions' logs here as `aws logs "
                        "tail` prints CloudWatch's (what `scenario from-logs` reads)")
    parser.epilog = ("exit status: 0 when the expected outcome held on every run (or on the file's "
                     "required_fraction of them), 1 when it did not, 2 when the file is bad or cannot run")


def run(args: argparse.Namespace) -> int:
    """Replay the scenario; 0 when the expectation held often enough, 1 when not, 2 on a bad file."""
    import logging

    from ..engine.trace import write_chrome_trace

    try:
        scenario = load(args.file)
    except ScenarioError as exc:
        for problem in exc.problems:
            print(problem, file=sys.stderr)
        return 2
    freezer_log = logging.getLogger("lambda_freeze.freezer")
    level = freezer_log.level
    if getattr(args, "verbose", 0) == 0:
        freezer_log.setLevel(logging.WARNING)  # once per run would be noise: the report names the freezer
    runs = args.runs or scenario.runs
    progress = _Progress(scenario.path.name, runs, sys.stderr)
    started = time.monotonic()
    recording = args.record_logs.open("w") if getattr(args, "record_logs", None) else None
    try:
        results = run_scenario(scenario, runs=runs, freezer=args.freezer, on_run=progress,
                               log_sink=TailRecorder(recording) if recording is not None else None)
    except LambdaFreezeError as exc:
        progress.close()
        print(f"lambda-freeze: {exc.message}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        progress.close()
        print("lambda-freeze: interrupted", file=sys.stderr)
        return 130
    finally:
        freezer_log.setLevel(level)
        if recording is not None:
            recording.close()
    progress.close()
    report = Report(scenario, results, time.monotonic() - started)
    if args.trace is not None:
        write_chrome_trace([event for result in results for event in result.events], args.trace)
        print(f"lambda-freeze: timeline of {len(results)} run(s) written to {args.trace}", file=sys.stderr)
    print(json.dumps(report.as_dict(), indent=2, default=str, ensure_ascii=False) if args.json else report.render())
    return 0 if report.passed else 1

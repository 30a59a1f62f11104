"""Running a scenario: each run with fresh database logins, emulators and functions, the steps in order."""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from ..config import FunctionConfig
from ..errors import LambdaFreezeError
from ..proxy import make_toxic
from ..timeline import TimelineEvent
from .model import Scenario, Step


@dataclass
class StepResult:
    label: str
    action: str
    outcome: str  # "ok" or an error type (invoke), "held" / "not held" (expect), "frozen", "added", ...
    duration_ms: float = 0.0
    request_id: str | None = None
    detail: str | None = None  # the error message; why an expectation did not hold


@dataclass
class RunResult:
    number: int
    steps: list[StepResult]
    events: list[TimelineEvent]
    freezer: str
    aborted: str | None = None  # the run could not go on: a step or the setup raised

    @property
    def reproduced(self) -> bool:
        return self.aborted is None and all(s.outcome == "held" for s in self.steps if s.action == "expect")

    @property
    def failure(self) -> str | None:
        if self.aborted is not None:
            return self.aborted
        return next((f"{s.label}: {s.detail}" for s in self.steps if s.action == "expect" and s.outcome != "held"),
                    None)


@dataclass
class _Invoked:
    function: str
    request_id: str
    ok: bool | None  # None: an asynchronous invocation whose outcome has not been looked up yet
    error_type: str | None = None
    message: str = ""
    payload: str = ""
    log: str = ""

    @property
    def outcome(self) -> str:
        return "ok" if self.ok else self.error_type or "Unhandled"


def _short(text: str, limit: int = 120) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


class _Run:
    """One replay: fresh database logins, emulators and functions; the steps in order; everything stopped after."""

    def __init__(self, scenario: Scenario, number: int, freezer: str | None, admins: Mapping[str, Any]):
        self.scenario = scenario
        self.number = number
        self.freezer = freezer
        self.admins = admins
        self.threads: dict[str, Any] = {}  # freezer -> (EmulatorThread, CollectingSink)
        self.functions: dict[str, Any] = {}  # name -> (LambdaFunction, EmulatorThread)
        self.logins: dict[str, Any] = {}
        self.invoked: dict[str, _Invoked] = {}
        self.marks: list[TimelineEvent] = []

    def execute(self) -> RunResult:
        results: list[StepResult] = []
        aborted = None
        began = time.monotonic()
        try:
            self._setup()
            for step in self.scenario.steps:
                started = time.monotonic()
                try:
                    result = getattr(self, f"_{step.action}")(step)
                except Exception as exc:  # a boundary: this run is over, and the report says why
                    aborted = f"{step.label}: {type(exc).__name__}: {_short(str(exc))}"
                    result = StepResult(step.label, step.action, f"aborted ({type(exc).__name__})", detail=str(exc))
                result.duration_ms = (time.monotonic() - started) * 1000
                results.append(result)
                self._mark("step", started, label=step.label, outcome=result.outcome, request_id=result.request_id)
                if aborted is not None:
                    break
        except Exception as exc:  # setting up: a database, a function
            aborted = f"setup: {type(exc).__name__}: {_short(str(exc))}"
        finally:
            self._mark("run", began, run=self.number)
            events, freezer = self._teardown()
        return RunResult(self.number, results, events, freezer, aborted)

    def _mark(self, kind: str, started: float, **detail: Any) -> None:
        self.marks.append(TimelineEvent(time.time(), time.monotonic(), kind, "scenario", {"started_s": started,
                                                                                          **detail}))

    def _emulator(self, freezer: str) -> tuple[Any, Any]:
        from ..config import ServerConfig
        from ..testing import CollectingSink, EmulatorThread

        if freezer not in self.threads:
            sink = CollectingSink()
            self.threads[freezer] = (EmulatorThread(ServerConfig(port=0, freezer=freezer), sink=sink).start(), sink)
        return self.threads[freezer]  # type: ignore[no-any-return]

    def _setup(self) -> None:
        from ..harness import LambdaFunction

        for name, database in self.scenario.databases.items():
            self.logins[name] = self.admins[database.kind].create(**database.settings)
        for spec in self.scenario.functions.values():
            env: dict[str, str] = {}
            prefixes = {**spec.databases, **{u: t for u, t in spec.upstreams.items() if t in self.logins}}
            for prefix, login in prefixes.items():
                env.update(self.logins[login].env(prefix))
            env.update(spec.env)  # what the file says wins
            upstreams = {u: _address(self.logins[t]) if t in self.logins else t for u, t in spec.upstreams.items()}
            config = FunctionConfig(name=spec.name, code_dir=spec.code_dir, env=env, upstreams=upstreams,
                                    **spec.settings)
            thread, sink = self._emulator(self.freezer or spec.freezer or self.scenario.freezer or "auto")

            async def add(emulator: Any, config: FunctionConfig = config) -> None:
                emulator.add_function(config)

            thread.call(add)
            self.functions[spec.name] = (LambdaFunction(thread, config, sink), thread)
        for fault in self.scenario.faults.values():
            self._fault(Step(0, "fault", fault.name, None, fault=fault))

    def _teardown(self) -> tuple[list[TimelineEvent], str]:
        events = list(self.marks)
        freezers = []
        for thread, _ in self.threads.values():
            try:
                thread.stop()
            except Exception as exc:  # a boundary: the report comes first
                print(f"lambda-freeze: run {self.number}: stopping the emulator: {exc}", file=sys.stderr)
            if thread.emulator is not None:
                events.extend(thread.emulator.timeline.events)
                if thread.emulator.freezer is not None:
                    freezers.append(thread.emulator.freezer.name)
        for admin in self.admins.values():
            try:
                admin.drop_all()
            except Exception as exc:
                print(f"lambda-freeze: run {self.number}: dropping database logins: {exc}", file=sys.stderr)
        events.sort(key=lambda e: e.monotonic_s)
        return events, ", ".join(sorted(set(freezers))) or "-"

    # ------------------------------------------------------------------------------------------- the steps
    def _invoke(self, step: Step) -> StepResult:
        from ..harness import InvokeError

        function, _ = self.functions[str(step.function)]
        try:
            result = function.invoke(step.payload)
            invoked = _Invoked(function.name, result.request_id, result.ok, result.error_type,
                               result.error_message or "", result.raw.decode("utf-8", "replace"), result.log)
        except InvokeError as exc:  # refused by the Invoke API (429, 413, ...): an outcome like any other
            invoked = _Invoked(function.name, "", False, exc.error_type, exc.message, json.dumps(exc.body))
        assert step.key is not None
        self.invoked[step.key] = invoked
        return StepResult(step.label, step.action, invoked.outcome, request_id=invoked.request_id,
                          detail=invoked.message or None)

    def _invoke_async(self, step: Step) -> StepResult:
        function, _ = self.functions[str(step.function)]
        request_id = function.invoke_async(step.payload)
        assert step.key is not None
        self.invoked[step.key] = _Invoked(function.name, request_id, None)
        return StepResult(step.label, step.action, "queued", request_id=request_id)

    def _stay_frozen(self, step: Step) -> StepResult:
        for function, _ in self.functions.values():
            function.wait_frozen()
        time.sleep(step.seconds)  # the scenario itself: time passes while every environment is frozen
        frozen = all(thread.emulator.freezer.name != "none" for thread, _ in self.threads.values())
        return StepResult(step.label, step.action, "frozen" if frozen else "idle (freezer none)")

    def _fault(self, step: Step) -> StepResult:
        fault = step.fault
        assert fault is not None
        control = self.functions[fault.function][0].faults(fault.upstream)
        if step.remove is not None:
            control.remove(fault.name)
            return StepResult(step.label, step.action, "removed")
        control.add(fault.name, make_toxic(fault.type, fault.settings), direction=fault.direction)
        return StepResult(step.label, step.action, "added")

    def _kill_db_connections(self, step: Step) -> StepResult:
        killed = sum(self.logins[name].kill_sessions() for name in step.databases)
        return StepResult(step.label, step.action, f"killed {killed}")

    def _expect(self, step: Step) -> StepResult:
        expect = step.expect
        assert expect is not None
        invoked = self.invoked[expect.invoke]
        if invoked.ok is None:
            self._await_async(invoked)
        problems = []
        if expect.ok is not None and invoked.ok != expect.ok:
            problems.append(f"expected {'success' if expect.ok else 'an error'}, got {invoked.outcome}")
        if expect.error_type is not None and invoked.error_type != expect.error_type:
            problems.append(f"expected {expect.error_type}, got {invoked.outcome}")
        for what, pattern, text in (("errorMessage", expect.message, invoked.message),
                                     ("log", expect.log, invoked.log), ("response", expect.payload, invoked.payload)):
            if pattern is not None and not pattern.search(text):
                problems.append(f"{what} {_short(text, 80)!r} does not match /{pattern.pattern}/")
        return StepResult(step.label, step.action, "not held" if problems else "held",
                          request_id=invoked.request_id, detail="; ".join(problems) or None)

    def _await_async(self, invoked: _Invoked) -> None:
        """The first delivery attempt's outcome, from the emulator's ``invoke`` record of that request."""
        function, thread = self.functions[invoked.function]

        def record(emulator: Any) -> TimelineEvent | None:
            return next((e for e in emulator.timeline.events
                         if e.kind == "invoke" and e.detail.get("request_id") == invoked.request_id), None)

        async def read(emulator: Any) -> TimelineEvent | None:
            return record(emulator)

        thread.wait_for(lambda emulator: record(emulator) is not None, function.config.timeout_s + 60)
        event = thread.call(read)
        assert event is not None
        invoked.ok = event.detail.get("error_type") is None
        invoked.error_type = event.detail.get("error_type")
        invoked.message = event.detail.get("message") or ""


def _address(login: Any) -> str:
    return f"[{login.host}]:{login.port}" if ":" in login.host else f"{login.host}:{login.port}"


class CannotRun(LambdaFreezeError):
    """A scenario whose prerequisites are missing (a database server, a runtime client); the message says how to
    provide them."""

    error_type = "CannotRun"


def preflight(scenario: Scenario) -> dict[str, Any]:
    """Check that every function can start and every database server is reachable; returns one administrator per
    database kind the scenario uses."""
    from ..databases import MySQLUsers, PostgresRoles, mysql_dsn, postgres_dsn
    from ..runtimes import bootstrap_problem

    for spec in scenario.functions.values():
        problem = bootstrap_problem(FunctionConfig(name=spec.name, code_dir=spec.code_dir, **spec.settings))
        if problem is not None:
            raise CannotRun(f"function {spec.name}: {problem}")
    admins: dict[str, Any] = {}
    for kind in sorted({database.kind for database in scenario.databases.values()}):
        admin = PostgresRoles(postgres_dsn()) if kind == "postgresql" else MySQLUsers(mysql_dsn())
        variable = "LAMBDA_FREEZE_PG_DSN" if kind == "postgresql" else "LAMBDA_FREEZE_MYSQL_DSN"
        try:
            admin.check()
        except OSError as exc:
            raise CannotRun(
                f"{'PostgreSQL' if kind == 'postgresql' else 'MySQL'} at {admin.host}:{admin.port} is not reachable "
                f"({_short(str(exc), 160)}): start it, or point {variable} at one"
            ) from None
        admins[kind] = admin
    return admins


def run_scenario(scenario: Scenario, *, runs: int | None = None, freezer: str | None = None,
                 on_run: Callable[[RunResult], None] | None = None) -> list[RunResult]:
    """Replay the scenario ``runs`` times (default: the file's); ``freezer`` overrides the file's choice."""
    admins = preflight(scenario)
    results = []
    for number in range(1, (runs or scenario.runs) + 1):
        result = _Run(scenario, number, freezer, admins).execute()
        results.append(result)
        if on_run is not None:
            on_run(result)
    return results

"""Running a scenario: each run with fresh database logins, emulators and functions, the steps in order."""

from __future__ import annotations

import json
import re
import shutil
import sys
import tempfile
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from ..config.settings import FunctionConfig
from ..engine.logs import LogSink
from ..engine.timeline import TimelineEvent
from ..proxy import make_toxic
from . import sql
from .later import Later
from .load import upstream_target
from .model import Expectation, Scenario, Step
from .placeholders import fill, payload_value
from .prerequisites import preflight
from .queue_run import QueueRun
from .services import RunningService
from .virtual import declare_server_idle, freezes_virtually


@dataclass
class StepResult:
    label: str
    action: str
    outcome: str  # "ok" or an error type (invoke), "held" / "not held" (expect), "frozen", "added", ...
    duration_ms: float = 0.0
    request_id: str | None = None
    detail: str | None = None  # the error message; why an expectation did not hold
    at_s: float | None = None  # when it started, in seconds after the run's first step started
    aborted: str | None = None  # the step raised, and the run stops: "<step>: <exception type>: <message>"


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

    def __init__(self, scenario: Scenario, number: int, freezer: str | None, admins: Mapping[str, Any],
                 log_sink: LogSink | None = None):
        self.scenario = scenario
        self.number = number
        self.freezer = freezer
        self.admins = admins
        self.threads: dict[str, Any] = {}  # freezer -> (EmulatorThread, CollectingSink)
        self.functions: dict[str, Any] = {}  # name -> (LambdaFunction, EmulatorThread)
        self.logins: dict[str, Any] = {}
        self.services: dict[str, RunningService] = {}
        self.invoked: dict[str, _Invoked] = {}
        self.marks: list[TimelineEvent] = []
        self.log_sink = log_sink  # also gets every function log line (function, environment, line)
        self.queues = QueueRun(scenario)
        self.run_dir: str | None = None  # ${run.dir}: made when a value first names it
        self.later = Later()  # invoke steps with ``at``, each on a thread of its own
        self.step_ended: float | None = None  # when the last step of the main line ended (monotonic)

    def execute(self) -> RunResult:
        results: list[StepResult] = []
        aborted = None
        began = time.monotonic()
        try:
            self._setup()
            self.later.begin()
            for step in self.scenario.steps:
                if step.at is not None:  # started on its own thread at its time; the next step goes on now
                    results.append(self._start_later(step))
                    continue
                result = self._step(step)
                self.step_ended = time.monotonic()
                results.append(result)
                if result.aborted is not None:
                    break
        except Exception as exc:  # setting up: a database, a function
            aborted = f"setup: {type(exc).__name__}: {_short(str(exc))}"
        finally:
            if aborted is not None or any(r.aborted is not None for r in results):
                self.later.stop()  # the run is over: an invocation whose time has not come does not start
            self.later.join()
            aborted = aborted or next((r.aborted for r in results if r.aborted is not None), None)
            self._mark("run", began, run=self.number)
            events, freezer = self._teardown()
        return RunResult(self.number, results, events, freezer, aborted)

    def _step(self, step: Step) -> StepResult:
        """One step, timed and marked in the timeline; an exception is its outcome (the run stops there)."""
        started = time.monotonic()
        try:
            result: StepResult = getattr(self, f"_{step.action}")(step)
        except Exception as exc:  # a boundary: this run is over, and the report says why
            result = StepResult(step.label, step.action, f"aborted ({type(exc).__name__})", detail=str(exc),
                                aborted=f"{step.label}: {type(exc).__name__}: {_short(str(exc))}")
        result.duration_ms = (time.monotonic() - started) * 1000
        result.at_s = started - self.later.origin
        self._mark("step", started, label=step.label, outcome=result.outcome, request_id=result.request_id,
                   production=step.production.get("outcome") if step.production else None)
        return result

    def _start_later(self, step: Step) -> StepResult:
        """An invoke step with ``at``: its result is filled in once it is done (an ``expect`` on it waits for that);
        it stays "not started" when the run stops before its time."""
        assert step.at is not None and step.key is not None
        placeholder = StepResult(step.label, step.action, "not started")

        def work() -> None:
            done = self._step(step)
            for name in ("outcome", "request_id", "detail", "duration_ms", "at_s", "aborted"):
                setattr(placeholder, name, getattr(done, name))

        self.later.start(step.key, step.at, step.after, work)
        return placeholder

    def _mark(self, kind: str, started: float, **detail: Any) -> None:
        self.marks.append(TimelineEvent(time.time(), time.monotonic(), kind, "scenario", {"started_s": started,
                                                                                          **detail}))

    def _service_event(self, name: str, what: str, detail: dict[str, Any]) -> None:
        """A service's start, readiness, output and end, in the run's timeline (called from its reader thread)."""
        self.marks.append(TimelineEvent(time.time(), time.monotonic(), "service", name, {"what": what, **detail}))

    def _value(self, name: str) -> str:
        """A placeholder's value in this run: ``services.NAME.port``, ``databases.NAME.user``, ``run.dir``..."""
        if name == "run.dir":
            self.run_dir = self.run_dir or tempfile.mkdtemp(prefix=f"lambda-freeze-run{self.number}-")
            return self.run_dir
        kind, target, field = name.split(".")
        if kind == "services":
            return str(getattr(self.services[target], field))
        login = self.logins[target]
        return str(login.database if field == "name" else getattr(login, field))

    def _upstream(self, value: str) -> str:
        """An upstream's address in this run: a database's server, a service's port, or the file's host:port."""
        target, close = upstream_target(value)
        if target in self.logins:
            return _address(self.logins[target]) + close
        if target in self.services:
            return self.services[target].address + close
        return value.strip()

    def _emulator(self, freezer: str) -> tuple[Any, Any]:
        from ..config.settings import ServerConfig
        from ..testing import CollectingSink, EmulatorThread

        if freezer not in self.threads:
            sink = CollectingSink(echo=self.log_sink)
            config = ServerConfig(port=0, api_port=0, freezer=freezer,  # with the front door, for http steps
                                  events=self.queues.events())
            self.threads[freezer] = (EmulatorThread(config, sink=sink).start(), sink)
        return self.threads[freezer]  # type: ignore[no-any-return]

    def _setup(self) -> None:
        from ..harness import LambdaFunction

        for name, database in self.scenario.databases.items():
            # A login of its own, with a schema (PostgreSQL) or database (MySQL) of its own: the tables of a run
            # are its own, and go with it.
            own = {"own_schema": True} if database.kind == "postgresql" else {"own_database": True}
            self.logins[name] = login = self.admins[database.kind].create(**database.settings, **own)
            if database.setup:
                sql.execute(login, database.setup)
        for name, service in self.scenario.services.items():
            self.services[name] = RunningService(service, self._service_event)
            self.services[name].start(self._value)
        for spec in self.scenario.functions.values():
            env: dict[str, str] = {}
            targets = {u: upstream_target(t)[0] for u, t in spec.upstreams.items()}
            prefixes = {**spec.databases, **{u: t for u, t in targets.items() if t in self.logins}}
            for prefix, login_name in prefixes.items():
                env.update(self.logins[login_name].env(prefix))
            env.update({key: fill(text, self._value) for key, text in spec.env.items()})  # what the file says wins
            upstreams = {u: self._upstream(t) for u, t in spec.upstreams.items()}
            # A virtual step puts every function on a virtual clock; a function's own virtual_time = true, too.
            virtual = freezes_virtually(self.scenario) or bool(spec.settings.get("virtual_time"))
            config = FunctionConfig(name=spec.name, code_dir=spec.code_dir, env=env, upstreams=upstreams,
                                    **{**spec.settings, "virtual_time": virtual})
            thread, sink = self._emulator(self.freezer or spec.freezer or self.scenario.freezer or "auto")

            async def add(emulator: Any, config: FunctionConfig = config) -> None:
                emulator.add_function(config)

            thread.call(add)
            self.functions[spec.name] = (LambdaFunction(thread, config, sink), thread)
            if config.virtual_time:
                declare_server_idle(self.functions[spec.name][0], self.scenario, targets)
            self.queues.add_mappings(spec.name, thread)
        for fault in self.scenario.faults.values():
            self._fault(Step(0, "fault", fault.name, None, fault=fault))

    def _teardown(self) -> tuple[list[TimelineEvent], str]:
        freezers = []
        for thread, _ in self.threads.values():
            try:
                thread.stop()
            except Exception as exc:  # a boundary: the report comes first
                print(f"lambda-freeze: run {self.number}: stopping the emulator: {exc}", file=sys.stderr)
            if thread.emulator is not None:
                if thread.emulator.freezer is not None:
                    freezers.append(thread.emulator.freezer.name)
        for service in reversed(self.services.values()):  # after the functions that used them
            try:
                service.stop()
            except Exception as exc:  # a boundary: the report comes first
                print(f"lambda-freeze: run {self.number}: stopping service {service.spec.name}: {exc}",
                      file=sys.stderr)
        events = list(self.marks)  # the services' last records too
        for thread, _ in self.threads.values():
            if thread.emulator is not None:
                events.extend(thread.emulator.timeline.events)
        for admin in self.admins.values():
            try:
                admin.drop_all()
            except Exception as exc:
                print(f"lambda-freeze: run {self.number}: dropping database logins: {exc}", file=sys.stderr)
        events.sort(key=lambda e: e.monotonic_s)
        if self.run_dir is not None:
            shutil.rmtree(self.run_dir, ignore_errors=True)
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

    def _http(self, step: Step) -> StepResult:
        """A request through the front door; 2xx and 3xx are ``ok``, other statuses the outcome ``HTTP <status>``
        with the body as the message."""
        import urllib.error
        import urllib.request

        function, _ = self.functions[str(step.function)]
        request = step.request or {}
        headers = {str(k): str(v) for k, v in request.get("headers", {}).items()}
        if request.get("url"):
            headers["Host"] = function.function_url.split("/")[2]
        body = str(request["body"]).encode() if "body" in request else None
        call = urllib.request.Request(
            function.http + request["path"], data=body, headers=headers, method=request.get("method", "GET")
        )
        try:
            with urllib.request.urlopen(call, timeout=function.config.timeout_s + 30) as answer:
                status, raw, head = answer.status, answer.read(), answer.headers
        except urllib.error.HTTPError as exc:
            status, raw, head = exc.code, exc.read(), exc.headers
        text = raw.decode("utf-8", "replace")
        ok = 200 <= status < 400
        request_id = head.get("x-amzn-RequestId") or head.get("Apigw-Requestid") or ""
        invoked = _Invoked(function.name, request_id, ok, None if ok else f"HTTP {status}", "" if ok else text, text)
        assert step.key is not None
        self.invoked[step.key] = invoked
        return StepResult(step.label, step.action, invoked.outcome, request_id=request_id,
                          detail=invoked.message or None)

    def _invoke_async(self, step: Step) -> StepResult:
        function, _ = self.functions[str(step.function)]
        request_id = function.invoke_async(step.payload)
        assert step.key is not None
        self.invoked[step.key] = _Invoked(function.name, request_id, None)
        return StepResult(step.label, step.action, "queued", request_id=request_id)

    def _stay_frozen(self, step: Step) -> StepResult:
        if step.virtual:
            self.later.join()
            for function, _ in self.functions.values():
                function.stay_frozen(step.seconds, virtual=True)
            return StepResult(step.label, step.action, f"frozen, clocks moved {step.seconds:g} s")
        # The gap counts from the end of the step before, or of the last invocation started with ``at`` (an answer:
        # where a replay's logs have its END), not from when the freezes were seen: waiting for them is part of it.
        self.later.join()  # every environment frozen: the invocations started with ``at`` have returned
        since = max(self.step_ended or 0.0, self.later.last_returned) or time.monotonic()
        for function, _ in self.functions.values():
            function.wait_frozen()
        remaining = since + step.seconds - time.monotonic()
        if remaining > 0:
            time.sleep(remaining)  # the scenario itself: time passes while every environment is frozen
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

    def _sql(self, step: Step) -> StepResult:
        rows = sql.execute(self.logins[step.databases[0]], step.statements)
        return StepResult(step.label, step.action, f"ran {len(step.statements)}",
                          detail=_short(json.dumps(sql.result(rows), default=str)) if rows else None)

    def _await_async(self, step: Step) -> StepResult:
        """Until no asynchronous event of the functions is queued, waiting for a retry, or being delivered."""
        counts = {"delivered": 0, "failed": 0}
        deadline = time.monotonic() + step.seconds

        def drained(status: Mapping[str, Any]) -> bool:
            return bool(status["queued"] == status["retrying"] == status["in_flight"] == 0)

        for name in step.functions:
            function, _ = self.functions[name]
            # Checked on every engine event; read again once the loop has finished what that event was part of
            # (an attempt's outcome is recorded just before its retry is scheduled).
            while not drained(status := function.async_status()):
                try:
                    function.wait_async(drained, max(deadline - time.monotonic(), 0.001))
                except TimeoutError:
                    status = function.async_status()
                    raise TimeoutError(f"function {name}'s asynchronous events not done after {step.seconds:g} s: "
                                       f"{status['queued']} queued, {status['retrying']} waiting for a retry, "
                                       f"{status['in_flight']} being delivered") from None
            counts["delivered"] += status["delivered"]
            counts["failed"] += status["failed"]
        return StepResult(step.label, step.action,
                          f"drained ({counts['delivered']} delivered, {counts['failed']} failed)")

    def _send_message(self, step: Step) -> StepResult:
        return StepResult(step.label, step.action, self.queues.send(step))

    def _put_object(self, step: Step) -> StepResult:
        return StepResult(step.label, step.action, self.queues.put(step))

    def _trigger(self, step: Step) -> StepResult:
        assert step.schedule is not None
        request_id = self.queues.trigger(step.schedule)
        assert step.key is not None and step.function is not None
        self.invoked[step.key] = _Invoked(step.function, request_id, None)
        return StepResult(step.label, step.action, "fired", request_id=request_id)

    def _await_queue(self, step: Step) -> StepResult:
        return StepResult(step.label, step.action, "reached", detail=self.queues.wait(step))

    def _expect(self, step: Step) -> StepResult:
        expect = step.expect
        assert expect is not None
        if expect.queue is not None and expect.counts is not None:
            wrong = self.queues.check(expect.queue, expect.counts)
            return StepResult(step.label, step.action, "not held" if wrong else "held", detail=wrong)
        if expect.query is not None:
            return self._expect_query(step, expect)
        assert expect.invoke is not None
        self.later.join([expect.invoke])
        if expect.invoke not in self.invoked:  # started with ``at``: it raised (its step says why), or never ran
            raise RuntimeError(f"the invocation {expect.invoke} has no outcome: see its step")
        invoked = self.invoked[expect.invoke]
        if invoked.ok is None:
            self._await_delivery(invoked)
        problems = []
        if expect.ok is not None and invoked.ok != expect.ok:
            problems.append(f"expected {'success' if expect.ok else 'an error'}, got {invoked.outcome}")
        if expect.error_type is not None and invoked.error_type != expect.error_type:
            problems.append(f"expected {expect.error_type}, got {invoked.outcome}")
        for what, source, text, wanted in (
            ("errorMessage", expect.message, invoked.message, True), ("log", expect.log, invoked.log, True),
            ("response", expect.payload, invoked.payload, True), ("log", expect.not_log, invoked.log, False),
            ("response", expect.not_payload, invoked.payload, False),
        ):
            if source is None:
                continue
            try:
                pattern = re.compile(fill(source, self._invocation_value))
            except (LookupError, ValueError) as exc:  # a value of an earlier response that is not there
                problems.append(f"{what} /{source}/: {exc}")
                continue
            found = pattern.search(text)
            if wanted and not found:
                problems.append(f"{what} {_short(text, 80)!r} does not match /{source}/")
            elif not wanted and found:
                problems.append(f"{what} has {_short(found[0], 80)!r}, which matches /{source}/")
        return StepResult(step.label, step.action, "not held" if problems else "held",
                          request_id=invoked.request_id, detail="; ".join(problems) or None)

    def _invocation_value(self, name: str) -> str:
        """``${invoke.NAME.request_id}``, ``${invoke.NAME.payload.KEY}``: escaped for a regular expression."""
        _, key, field, *path = name.split(".")
        invoked = self.invoked[key]
        return re.escape(invoked.request_id if field == "request_id" else payload_value(invoked.payload, path))

    def _expect_query(self, step: Step, expect: Expectation) -> StepResult:
        assert expect.query is not None and expect.database is not None
        got = sql.result(sql.execute(self.logins[expect.database], [expect.query]))
        held = sql.same(got, expect.equals)
        detail = None if held else f"the query returned {json.dumps(got, default=str)}, not " \
                                   f"{json.dumps(expect.equals, default=str)}"
        return StepResult(step.label, step.action, "held" if held else "not held", detail=detail)

    def _await_delivery(self, invoked: _Invoked) -> None:
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


def run_scenario(scenario: Scenario, *, runs: int | None = None, freezer: str | None = None,
                 on_run: Callable[[RunResult], None] | None = None, log_sink: LogSink | None = None
                 ) -> list[RunResult]:
    """Replay the scenario ``runs`` times (default: the file's); ``freezer`` overrides the file's choice."""
    admins = preflight(scenario)
    results = []
    for number in range(1, (runs or scenario.runs) + 1):
        result = _Run(scenario, number, freezer, admins, log_sink).execute()
        results.append(result)
        if on_run is not None:
            on_run(result)
    return results

"""Checking a scenario's steps: each ``[[steps]]`` table becomes a ``Step``, or its problems are recorded with the
line and the field."""

from __future__ import annotations

from typing import Any, Protocol

from ..config.events import BucketConfig, QueueConfig, ScheduleConfig
from .bucket_checks import put_object, trigger
from .checks import (
    _BAD,
    AWAIT_KEYS,
    EXPECT_KEYS,
    HTTP_KEYS,
    INVOCATION_KEYS,
    QUERY_KEYS,
    SECONDS,
    SQL_KEYS,
    _boolean,
    _Checker,
    _kind,
    _statements,
    _string,
)
from .model import ACTIONS, CONDITIONS, DEFAULT_AWAIT_ASYNC_S, IDENTIFIER, Expectation, FaultSpec, Path_, Step
from .placeholders import Known, names, problem
from .queue_checks import await_queue, queue_counts, send_message


class Declarations(Protocol):
    """What the steps are checked against: the file's declarations as the loader has read them (``load``'s builder)."""

    ck: _Checker
    database_names: list[str]
    function_names: list[str]
    queues: dict[str, QueueConfig]
    buckets: dict[str, BucketConfig]
    schedules: dict[str, ScheduleConfig]

    def fault(self, name: str, spec: Any, where: Path_) -> FaultSpec | None: ...

    def target_function(self, name: str | None, where: Path_) -> str | None: ...

    def target_database(self, name: str | None, where: Path_) -> str | None: ...


def _known(names: Any) -> str:
    names = list(names)
    return f"known: {', '.join(names)}" if names else "none is defined"


class StepBuilder:
    """The steps of one file, in order: what each refers to (functions, databases, faults in place, earlier
    invocations) is checked against what the file declares and the steps before it."""

    def __init__(self, builder: Declarations, active: dict[str, FaultSpec | None]):
        self.b = builder
        self.ck = builder.ck
        self.active = active  # the faults in place (None: a faulty one, reported already)
        self.invokes: dict[str, Step] = {}
        self.last_invoke: Step | None = None

    def build(self, raw: Any) -> list[Step]:
        ck = self.ck
        if not isinstance(raw, list) or not raw:
            ck.error(("steps",), "expected an array of steps ([[steps]] tables), at least one")
            return []
        steps: list[Step] = []
        counts: dict[str, int] = {}
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
            line = next((ck.lines[where[:n]] for n in (2, 1) if where[:n] in ck.lines), None)
            base = {"number": index + 1, "action": action, "line": line}
            step = getattr(self, f"_{action}")(value, (*where, action), base, label)
            if step is not None:
                steps.append(step)
        if not any(step.action == "expect" for step in steps) and not ck.problems:
            ck.error(("steps",), "no expect step: add one that says which outcome reproduces the bug")
        return steps

    # ------------------------------------------------------------------------------------------ the actions
    def _invoke(self, value: Any, here: Path_, base: dict[str, Any], label: str) -> Step | None:
        checked = self.ck.table(value, here, INVOCATION_KEYS)
        if checked is _BAD:  # still known by its name: expect steps that refer to it add no noise
            name = value.get("as") if isinstance(value, dict) and isinstance(value.get("as"), str) else None
            self.invokes[name or label] = self.last_invoke = Step(**base, label=label, key=name or label)
            return None
        name = checked.get("as")
        if name in self.invokes:
            self.ck.error((*here, "as"), f"{name!r} already names step {self.invokes[name].number}")
        function = self.b.target_function(checked.get("function"), (*here, "function"))
        at, after = self._timing(checked, here, base["action"])
        hint = ", ".join(part for part in (name, f"at {at:g} s" if at is not None else "") if part)
        step = Step(**base, label=f"{label} ({hint})" if hint else label, function=function,
                    payload=checked.get("payload", {}), key=name or label, production=checked.get("production"),
                    at=at, after=after)
        self.invokes[step.key or label] = self.last_invoke = step
        return step

    _invoke_async = _invoke

    def _timing(self, checked: dict[str, Any], here: Path_, action: str) -> tuple[float | None, str | None]:
        """``at`` (an invocation started at that offset, that the next step does not wait for) and ``after`` (the
        earlier invocation it waits for first: the one its environment served before it)."""
        at, after = checked.get("at"), checked.get("after")
        if at is not None and action != "invoke":
            self.ck.error((*here, "at"), f"only on invoke: {action} does not wait for the invocation already")
            return None, None
        if after is None:
            return (None if at is None else float(at)), None
        if at is None:
            self.ck.error((*here, "after"), "only with at: an invocation without at starts once every step before it "
                                            "is done")
        elif after not in self.invokes:
            named = ", ".join(self.invokes) or "none"
            self.ck.error((*here, "after"), f"no earlier invoke step is named {after!r} (named: {named})")
        return (None if at is None else float(at)), after

    def _http(self, value: Any, here: Path_, base: dict[str, Any], label: str) -> Step | None:
        """An HTTP request through the front door: to the function's API routes, or its URL (``url = true``)."""
        checked = self.ck.table(value, here, HTTP_KEYS, required=("path",))
        if checked is _BAD:
            name = value.get("as") if isinstance(value, dict) and isinstance(value.get("as"), str) else None
            self.invokes[name or label] = self.last_invoke = Step(**base, label=label, key=name or label)
            return None
        name = checked.get("as")
        if name in self.invokes:
            self.ck.error((*here, "as"), f"{name!r} already names step {self.invokes[name].number}")
        function = self.b.target_function(checked.get("function"), (*here, "function"))
        request = {key: checked[key] for key in ("method", "path", "headers", "body", "url") if key in checked}
        text = f"{request.get('method', 'GET')} {request['path']}"
        step = Step(**base, label=f"{label} ({name or text})", function=function, key=name or label, request=request)
        self.invokes[step.key or label] = self.last_invoke = step
        return step

    def _stay_frozen(self, value: Any, here: Path_, base: dict[str, Any], label: str) -> Step | None:
        if isinstance(value, dict):  # { seconds = 900, virtual = true }: a virtual freeze (engine/clock.py)
            checked = self.ck.table(value, here, {"seconds": SECONDS, "virtual": _boolean}, required=("seconds",))
            if checked is _BAD:
                return None
            seconds, virtual = checked["seconds"], bool(checked.get("virtual", False))
        else:
            seconds, virtual = SECONDS(self.ck, value, here), False
        if seconds is _BAD:
            return None
        kind = ", virtual" if virtual else ""
        return Step(**base, label=f"{label} ({seconds:g} s{kind})", seconds=float(seconds), virtual=virtual)

    def _fault(self, value: Any, here: Path_, base: dict[str, Any], label: str) -> Step | None:
        ck, active = self.ck, self.active
        if isinstance(value, dict) and "remove" in value:
            checked = ck.table(value, here, {"remove": _string(IDENTIFIER, "a toxic name")}, required=("remove",))
            if checked is _BAD:
                return None
            if checked["remove"] not in active:
                ck.error((*here, "remove"), f"no fault {checked['remove']!r} is in place at this step; "
                         f"{_known(active)}")
                return None
            removed = active.pop(checked["remove"])
            if removed is None:
                return None
            return Step(**base, label=f"{label} (remove {removed.name})", fault=removed, remove=removed.name)
        if not isinstance(value, dict) or "add" not in value:
            ck.error(here, 'expected { add = "<name>", type = "<toxic>", ... } or { remove = "<name>" }')
            return None
        name = _string(IDENTIFIER, "a toxic name")(ck, value["add"], (*here, "add"))
        if name is _BAD:
            return None
        if name in active:
            ck.error((*here, "add"), f"fault {name!r} is already in place; remove it first")
            return None
        fault = self.b.fault(name, {k: v for k, v in value.items() if k != "add"}, here)
        active[name] = fault
        if fault is None:
            return None
        return Step(**base, label=f"{label} (add {name})", fault=fault)

    def _kill_db_connections(self, value: Any, here: Path_, base: dict[str, Any], label: str) -> Step | None:
        databases = self.b.database_names
        if value is True:
            chosen = tuple(databases)
        elif isinstance(value, str) and value in databases:
            chosen = (value,)
        else:
            self.ck.error(here, f"a database's name or true (all); {_known(databases)}, not {value!r}")
            return None
        if not chosen:
            self.ck.error(here, "the scenario has no databases")
            return None
        return Step(**base, label=f"{label} ({value if value is not True else 'all'})", databases=chosen)

    def _sql(self, value: Any, here: Path_, base: dict[str, Any], label: str) -> Step | None:
        """``sql = "statement"``, ``sql = ["s1", "s2"]`` or ``sql = { database = "pg", run = ... }``."""
        ck = self.ck
        if isinstance(value, dict):
            checked = ck.table(value, here, SQL_KEYS, required=("run",))
            if checked is _BAD:
                return None
            statements, database = checked["run"], checked.get("database")
            at: Path_ = (*here, "database")
        else:
            statements, database, at = _statements(ck, value, here), None, here
            if statements is _BAD:
                return None
        database = self.b.target_database(database, at)
        if database is None:
            return None
        return Step(**base, label=f"{label} ({database})", databases=(database,), statements=statements)

    def _await_async(self, value: Any, here: Path_, base: dict[str, Any], label: str) -> Step | None:
        """``await_async = true`` (every function), ``= "name"``, or ``= { function = "name", timeout = 60 }``."""
        ck, timeout = self.ck, DEFAULT_AWAIT_ASYNC_S
        if isinstance(value, dict):
            checked = ck.table(value, here, AWAIT_KEYS)
            if checked is _BAD:
                return None
            timeout = float(checked.get("timeout", timeout))
            value = checked.get("function", True)
            at: Path_ = (*here, "function")
        else:
            at = here
        if value is True:
            functions = tuple(self.b.function_names)
        elif isinstance(value, str) and value in self.b.function_names:
            functions = (value,)
        else:
            ck.error(at, f"a function's name, true (all), or {{ function, timeout }}; {_known(self.b.function_names)}"
                         f", not {value!r}")
            return None
        return Step(**base, label=f"{label} ({value if value is not True else 'all'})", functions=functions,
                    seconds=timeout)

    def _send_message(self, value: Any, here: Path_, base: dict[str, Any], label: str) -> Step | None:
        """Messages sent to a declared queue: ``{ queue, body | bodies, count, attributes, group_id }``."""
        sent = send_message(self.ck, value, here, self.b.queues)
        if sent is None:
            return None
        queue, messages = sent
        return Step(**base, label=f"{label} ({len(messages)} → {queue})", queue=queue, messages=messages)

    def _await_queue(self, value: Any, here: Path_, base: dict[str, Any], label: str) -> Step | None:
        """Until a queue is drained, or its mappings processed N, or its dead-letter queue holds N."""
        awaited = await_queue(self.ck, value, here, self.b.queues)
        if awaited is None:
            return None
        queue, counts, timeout = awaited
        what = ", ".join("drained" if key == "in_queue" else f"{key} {n}" for key, n in counts.items())
        return Step(**base, label=f"{label} ({queue}: {what})", queue=queue, counts=counts, seconds=timeout)

    def _put_object(self, value: Any, here: Path_, base: dict[str, Any], label: str) -> Step | None:
        """Objects put into a declared bucket (its notifications send their events to its queues)."""
        put = put_object(self.ck, value, here, self.b.buckets)
        if put is None:
            return None
        bucket, objects = put
        return Step(**base, label=f"{label} ({len(objects)} → {bucket})", bucket=bucket, objects=objects)

    def _trigger(self, value: Any, here: Path_, base: dict[str, Any], label: str) -> Step | None:
        """A declared schedule fired now, as ``lambda-freeze trigger NAME`` does."""
        name = trigger(self.ck, value, here, self.b.schedules)
        if name is None:
            return None
        # The asynchronous invocation it makes is an invocation like invoke_async's: an expect step may name it by
        # its label (trigger#1) and look at its first attempt's outcome.
        step = Step(**base, label=f"{label} ({name})", schedule=name, key=label,
                    function=self.b.schedules[name].function)
        self.invokes[label] = self.last_invoke = step
        return step

    def _expect(self, value: Any, here: Path_, base: dict[str, Any], label: str) -> Step | None:
        if isinstance(value, dict) and "queue" in value:
            checked = queue_counts(self.ck, value, here, self.b.queues)
            if checked is None:
                return None
            return Step(**base, label=f"{label} → {checked[0]}", expect=Expectation(queue=checked[0],
                                                                                   counts=checked[1]))
        expectation = self._query(value, here) if isinstance(value, dict) and "query" in value \
            else self._on_invocation(value, here)
        if expectation is None:
            return None
        target = expectation.invoke if expectation.query is None else f"{expectation.database} query"
        return Step(**base, label=f"{label} → {target}", expect=expectation)

    def _on_invocation(self, value: Any, here: Path_) -> Expectation | None:
        ck = self.ck
        mixed = [key for key in ("database", "equals") if isinstance(value, dict) and key in value]
        for key in mixed:
            ck.error((*here, key), "only with query: an expect step checks an invocation or a query's result")
        checked = ck.table(value, here, {**EXPECT_KEYS, "database": QUERY_KEYS["database"],
                                         "equals": QUERY_KEYS["equals"]})
        if checked is _BAD or mixed:
            return None
        if not any(key in checked for key in CONDITIONS):
            ck.error(here, f"says nothing to check: give at least one of {', '.join(CONDITIONS)}, or a query")
            return None
        target = self.invokes.get(checked["invoke"]) if "invoke" in checked else self.last_invoke
        if target is None:
            if "invoke" in checked:
                named = ", ".join(self.invokes) or "none"
                ck.error((*here, "invoke"), f"no earlier invoke step is named {checked['invoke']!r} (named: {named})")
                return None
            ck.error(here, "no invoke step comes before it")
            return None
        if checked.get("ok") is True and ("error_type" in checked or "message" in checked):
            ck.error((*here, "ok"), "ok = true contradicts error_type / message")
            return None
        for key in ("log", "not_log", "payload", "not_payload"):
            if target.action == "http" and key in ("log", "not_log") and key in checked:
                ck.error((*here, key), "not available for http (the log is not returned to an HTTP client)")
                return None
            if target.action == "invoke_async" and key in checked:
                what = "log" if "log" in key else "response"
                ck.error((*here, key), f"not available for invoke_async (its {what} is not returned to the caller)")
                return None
        known = Known(invokes=list(self.invokes))
        bad = False
        for key in ("message", "log", "payload", "not_log", "not_payload"):
            for name in names(checked.get(key, "")):
                why = problem(name, known)
                if why is not None:
                    ck.error((*here, key), why)
                    bad = True
        if bad:
            return None
        assert target.key is not None
        return Expectation(invoke=target.key, **{key: checked[key] for key in CONDITIONS if key in checked})

    def _query(self, value: dict[str, Any], here: Path_) -> Expectation | None:
        ck = self.ck
        for key in value:
            if key in EXPECT_KEYS:
                ck.error((*here, key), "not with query: an expect step checks an invocation or a query's result")
        checked = ck.table({k: v for k, v in value.items() if k not in EXPECT_KEYS}, here, QUERY_KEYS,
                           required=("equals",))
        if checked is _BAD or any(key in EXPECT_KEYS for key in value):
            return None
        database = self.b.target_database(checked.get("database"), (*here, "database"))
        if database is None:
            return None
        return Expectation(query=checked["query"], database=database, equals=checked["equals"])

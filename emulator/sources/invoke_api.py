"""The Invoke API's engine side (``runtime_api.InvokeBackend``): a request names a function (by name, partial ARN
or ARN, with a qualifier); ``RequestResponse`` becomes an ``Invocation`` on the function's pool and its outcome the
answer (whole or streamed, with the log tail when asked), ``Event`` goes to the function's asynchronous queue,
``DryRun`` is answered at once. The inspection API's views (environments, asynchronous queues) are here too.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Callable, Mapping, Sequence

from runtime_api import InvokeRequest, InvokeResult

from ..engine.invocation import CallerStream, Invocation, Outcome, decode_client_context
from ..engine.pool import FunctionPool
from ..engine.timeline import Timeline, record_outcome
from ..errors import FunctionNotFound
from .async_invoke import AsyncEvent, AsyncQueue, FailureRecord


class InvokeApiSource:
    def __init__(
        self,
        functions: Mapping[str, FunctionPool],
        queues: Mapping[str, AsyncQueue],
        failures: FailureRecord,
        timeline: Timeline,
    ):
        self._functions = functions  # the emulator's own tables: functions added later are found too
        self._queues = queues
        self._failures = failures
        self._timeline = timeline
        # Each function with its API routes and function URL; the emulator sets it to the front door's view.
        self.describe_functions: Callable[[], Sequence[Mapping[str, object]]] = lambda: [
            {"function": name, "routes": [], "url": None} for name in self._functions
        ]

    def resolve(self, name: str, qualifier: str | None = None) -> FunctionPool:
        """A function by name, partial ARN (``123456789012:function:name``) or ARN, with an optional qualifier."""
        parts = name.split(":")
        if name.startswith("arn:") and len(parts) in (7, 8) and parts[5] == "function":
            function, version = parts[6], parts[7] if len(parts) == 8 else None
        elif len(parts) in (3, 4) and parts[1] == "function":
            function, version = parts[2], parts[3] if len(parts) == 4 else None
        elif len(parts) in (1, 2):
            function, version = parts[0], parts[1] if len(parts) == 2 else None
        else:
            raise FunctionNotFound(f"Function not found: {name}")
        version = version or qualifier
        pool = self._functions.get(function)
        if pool is None and function == "function" and len(self._functions) == 1:
            pool = next(iter(self._functions.values()))  # RIE's URL: /2015-03-31/functions/function/invocations
        if pool is None or version not in (None, "$LATEST"):
            arn = pool.config.arn if pool else f"arn:aws:lambda:us-east-1:000000000000:function:{function}"
            raise FunctionNotFound(f"Function not found: {arn}{':' + version if version else ''}")
        return pool

    async def invoke(self, request: InvokeRequest) -> InvokeResult:
        pool = self.resolve(request.function, request.qualifier)
        if request.invocation_type == "DryRun":
            return InvokeResult(request_id=str(uuid.uuid4()), status=204)
        if request.invocation_type == "Event":
            event = AsyncEvent(pool.config.name, request.payload)
            self._queues[pool.config.name].submit(event)
            return InvokeResult(request_id=event.request_id, status=202)
        invocation = Invocation(
            request.payload,
            pool.config.arn,
            client_context=decode_client_context(request.client_context),
            streaming_invoke=request.response_stream,
        )
        outcome = await pool.invoke(invocation)
        if request.response_stream:
            timeline = self._timeline

            def record(final: Outcome) -> None:
                record_outcome(timeline, invocation, final, pool.config.name)

            stream = CallerStream(invocation, outcome, log_tail=request.log_type == "Tail", on_end=record)
            return InvokeResult(request_id=invocation.request_id, stream=stream)
        record_outcome(self._timeline, invocation, outcome, pool.config.name)
        tail = None
        if request.log_type == "Tail":
            # The tail ends with END and REPORT, written once the runtime is back in `next` (or timed out).
            await asyncio.shield(invocation.finished)
            tail = invocation.log.tail()
        return InvokeResult(
            request_id=invocation.request_id,
            payload=outcome.payload,
            function_error=None if outcome.ok else "Unhandled",
            log_tail=tail,
            content_type=outcome.content_type,
        )

    # ---------------------------------------------------------------------------------------- inspection
    def environments(self) -> Sequence[Mapping[str, object]]:
        return [env.describe() for pool in self._functions.values() for env in pool.environments.values()]

    def functions(self) -> Sequence[Mapping[str, object]]:
        return self.describe_functions()

    def async_status(self) -> Mapping[str, object]:
        return {
            "functions": {name: queue.status() for name, queue in self._queues.items()},
            "failures": self._failures.records,
        }

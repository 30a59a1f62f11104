"""The inspection call that moves a frozen environment's virtual clock on the Invoke API's port,
``POST /_lambda-freeze/environments/{id}/advance`` (``serve --virtual-time``); the engine is behind ``ClockBackend``."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Protocol

import orjson

from .errors import HttpApiError
from .http import Request, Response, Router

ADVANCE = "/_lambda-freeze/environments/{id}/advance"
MAX_GAP_S = 365 * 24 * 3600  # one call's gap: a year keeps the clock's nanosecond offset far inside 64 bits


class ClockBackend(Protocol):
    def advance_clock(self, env_id: str, seconds: float) -> Mapping[str, object]:
        """Move environment ``env_id``'s clocks forward; its description after. Raises ``HttpApiError``: 404 for an
        unknown environment, 409 when it is not frozen or its function runs in real time."""
        ...


def _seconds(raw: bytes) -> float:
    try:
        body = orjson.loads(raw or b"{}")
    except orjson.JSONDecodeError:
        raise HttpApiError(400, "InvalidRequestContentException", "The request body is not JSON") from None
    seconds = body.get("seconds") if isinstance(body, dict) else None
    # bool is an int to Python, not a number of seconds to a caller.
    if not isinstance(seconds, int | float) or isinstance(seconds, bool) or not 0 <= seconds <= MAX_GAP_S:
        raise HttpApiError(
            400,
            "InvalidParameterValueException",
            f'The body must be a JSON object with "seconds", a number from 0 to {MAX_GAP_S} (e.g. {{"seconds": 900}})',
        )
    return float(seconds)


def add_routes(router: Router, backend: ClockBackend) -> None:
    async def advance(request: Request) -> Response:
        seconds = _seconds(await request.read())
        described = backend.advance_clock(request.params["id"], seconds)
        return Response(200, orjson.dumps(described, default=str), content_type="application/json")

    router.add("POST", ADVANCE, advance)

"""A function URL's CORS, as the service applies it: it answers preflight requests itself, and sets the CORS
headers of every answer from the URL's settings (a function's own are replaced)."""

from __future__ import annotations

from collections.abc import Mapping

from runtime_api.front_door import HttpAnswer

from ...config.http_routes import Cors


def _allowed_origin(cors: Cors, origin: str) -> str | None:
    for allowed in cors.allow_origins:
        if allowed == "*":
            return origin if cors.allow_credentials else "*"
        if allowed.rstrip("/").lower() == origin.rstrip("/").lower():
            return origin
    return None


def is_preflight(method: str, headers: Mapping[str, str]) -> bool:
    return method == "OPTIONS" and "origin" in headers and "access-control-request-method" in headers


def preflight(cors: Cors, headers: Mapping[str, str]) -> HttpAnswer:
    """The answer to a preflight: 200, with the CORS headers only when the origin, method and headers are allowed."""
    answer = HttpAnswer(200, [("Vary", "Origin")])
    origin = _allowed_origin(cors, headers["origin"])
    method = headers["access-control-request-method"].strip().upper()
    asked = [h.strip().lower() for h in headers.get("access-control-request-headers", "").split(",") if h.strip()]
    if origin is None or not (method in cors.allow_methods or "*" in cors.allow_methods):
        return answer
    if asked and "*" not in cors.allow_headers and not set(asked) <= set(cors.allow_headers):
        return answer
    answer.headers.append(("Access-Control-Allow-Origin", origin))
    answer.headers.append(("Access-Control-Allow-Methods", ", ".join(cors.allow_methods)))
    if asked:
        answer.headers.append(("Access-Control-Allow-Headers", ", ".join(asked)))
    if cors.allow_credentials:
        answer.headers.append(("Access-Control-Allow-Credentials", "true"))
    if cors.max_age_s is not None:
        answer.headers.append(("Access-Control-Max-Age", str(cors.max_age_s)))
    return answer


def apply(cors: Cors, headers: Mapping[str, str], answer: HttpAnswer) -> HttpAnswer:
    """The URL's CORS headers on an answer, in place of any the function set."""
    answer.headers = [(n, v) for n, v in answer.headers if not n.lower().startswith("access-control-")]
    origin_header = headers.get("origin")
    origin = _allowed_origin(cors, origin_header) if origin_header else None
    if origin is None:
        return answer
    answer.headers.append(("Access-Control-Allow-Origin", origin))
    if origin != "*":
        answer.headers.append(("Vary", "Origin"))
    if cors.expose_headers:
        answer.headers.append(("Access-Control-Expose-Headers", ", ".join(cors.expose_headers)))
    if cors.allow_credentials:
        answer.headers.append(("Access-Control-Allow-Credentials", "true"))
    return answer

"""How HTTP reaches a function: its API Gateway routes (REST or HTTP API) and its function URL, as configured."""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from ..errors import ConfigError

METHODS = ("GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS", "ANY")
KINDS = ("rest", "http")  # a REST API (SAM Type: Api) or an HTTP API (SAM Type: HttpApi)
INVOKE_MODES = ("BUFFERED", "RESPONSE_STREAM")
AUTH_TYPES = ("NONE", "AWS_IAM")
DEFAULT_ROUTE = "$default"
DEFAULT_API_PORT = 3000  # the front door's port when a function has API routes or a URL, as `sam local start-api`
_SEGMENT = re.compile(r"^(\{[A-Za-z0-9_.-]+\+?\}|[^{}]*)$")


@dataclass(frozen=True)
class Route:
    """One API Gateway route to a function. ``path`` is ``/orders/{id}``, ``/{proxy+}``, or ``$default`` (HTTP API)."""

    kind: str
    method: str
    path: str
    stage: str = ""  # "" = the service's default: Prod (SAM's REST API stage), $default (HTTP API)
    payload_version: str = ""  # "" = the kind's: 1.0 for REST, 2.0 for HTTP APIs
    binary_media_types: tuple[str, ...] = ()  # REST only: content types passed to the function as base64

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ConfigError(f"route {self.path}: kind must be one of {', '.join(KINDS)}, not {self.kind!r}")
        object.__setattr__(self, "method", self.method.upper())
        if self.method not in METHODS:
            raise ConfigError(f"route {self.path}: method must be one of {', '.join(METHODS)}, not {self.method!r}")
        if self.path == DEFAULT_ROUTE:
            if self.kind != "http":
                raise ConfigError('route $default: only an HTTP API (kind = "http") has a $default route')
        elif not self.path.startswith("/"):
            raise ConfigError(f"route {self.path!r}: a path starts with '/' (e.g. /orders/{{id}})")
        else:
            segments = self.path.strip("/").split("/")
            for index, segment in enumerate(segments):
                if not _SEGMENT.match(segment) or (segment.endswith("+}") and index != len(segments) - 1):
                    raise ConfigError(
                        f"route {self.path}: {segment!r} is not a segment API Gateway accepts: a name, a {{param}}, "
                        "or a greedy {proxy+} as the last segment"
                    )
        if not self.stage:
            object.__setattr__(self, "stage", "Prod" if self.kind == "rest" else "$default")
        if not self.payload_version:
            object.__setattr__(self, "payload_version", "1.0" if self.kind == "rest" else "2.0")
        if self.payload_version not in ("1.0", "2.0") or (self.kind == "rest" and self.payload_version != "1.0"):
            raise ConfigError(
                f"route {self.path}: payload format {self.payload_version!r}: REST APIs send 1.0, HTTP APIs 1.0 or 2.0"
            )

    @property
    def route_key(self) -> str:
        """An HTTP API's route key: ``GET /orders/{id}``, ``ANY /{proxy+}`` or ``$default``."""
        return self.path if self.path == DEFAULT_ROUTE else f"{self.method} {self.path}"


@dataclass(frozen=True)
class Cors:
    """A function URL's CORS settings (``FunctionUrlConfig.Cors``)."""

    allow_origins: tuple[str, ...] = ()
    allow_methods: tuple[str, ...] = ()
    allow_headers: tuple[str, ...] = ()
    expose_headers: tuple[str, ...] = ()
    allow_credentials: bool = False
    max_age_s: int | None = None


@dataclass(frozen=True)
class FunctionUrl:
    """A function URL (``FunctionUrlConfig``), served at ``http://<name>.lambda-url.localhost:<api-port>/``."""

    auth_type: str = "NONE"
    invoke_mode: str = "BUFFERED"
    cors: Cors | None = None

    def __post_init__(self) -> None:
        if self.auth_type not in AUTH_TYPES:
            raise ConfigError(f"function URL: auth type must be one of {', '.join(AUTH_TYPES)}, not {self.auth_type!r}")
        if self.invoke_mode not in INVOKE_MODES:
            raise ConfigError(
                f"function URL: invoke mode must be one of {', '.join(INVOKE_MODES)}, not {self.invoke_mode!r}"
            )


# -------------------------------------------------------------------------------------------- config file
def routes_from_toml(value: Any, where: str) -> tuple[Route, ...]:
    """``routes = [{kind = "http", method = "GET", path = "/orders/{id}"}, "ANY /{proxy+}"]``: a table per route,
    or a string ``METHOD /path`` (an HTTP API route; ``rest METHOD /path`` for a REST API)."""
    if not isinstance(value, list):
        raise ConfigError(f'{where}: routes must be a list of tables or "METHOD /path" strings')
    routes: list[Route] = []
    for item in value:
        if isinstance(item, str):
            words = item.split()
            kind = "http"
            if words and words[0] in KINDS:
                kind = words.pop(0)
            if len(words) == 1 and words[0] == DEFAULT_ROUTE:
                words = ["ANY", DEFAULT_ROUTE]
            if len(words) != 2:
                raise ConfigError(f'{where}: route {item!r}: expected "METHOD /path", e.g. "GET /orders/{{id}}"')
            routes.append(Route(kind=kind, method=words[0], path=words[1]))
        elif isinstance(item, dict):
            unknown = sorted(set(item) - {"kind", "method", "path", "stage", "payload_version", "binary_media_types"})
            if unknown:
                raise ConfigError(f"{where}: route {item!r}: unknown key(s) {', '.join(unknown)}")
            try:
                routes.append(
                    Route(
                        kind=str(item.get("kind", "http")),
                        method=str(item.get("method", "ANY")),
                        path=str(item["path"]),
                        stage=str(item.get("stage", "")),
                        payload_version=str(item.get("payload_version", "")),
                        binary_media_types=tuple(str(t) for t in item.get("binary_media_types", ())),
                    )
                )
            except KeyError:
                raise ConfigError(f"{where}: route {item!r}: 'path' is required") from None
        else:
            raise ConfigError(f"{where}: route {item!r}: expected a table or a string")
    return tuple(routes)


def url_from_toml(value: Any, where: str) -> FunctionUrl:
    """``url = { auth_type = "NONE", invoke_mode = "BUFFERED", cors = { allow_origins = ["*"] } }`` (or true)."""
    if value is True:
        return FunctionUrl()
    if not isinstance(value, dict):
        raise ConfigError(f"{where}: url must be true or a table (auth_type, invoke_mode, cors)")
    unknown = sorted(set(value) - {"auth_type", "invoke_mode", "cors"})
    if unknown:
        raise ConfigError(f"{where}: url has unknown key(s) {', '.join(unknown)}")
    cors = value.get("cors")
    return FunctionUrl(
        auth_type=str(value.get("auth_type", "NONE")).upper(),
        invoke_mode=str(value.get("invoke_mode", "BUFFERED")).upper(),
        cors=_cors(cors, where) if cors is not None else None,
    )


def _cors(value: Any, where: str) -> Cors:
    if not isinstance(value, dict):
        raise ConfigError(f"{where}: url.cors must be a table")
    keys = {
        "allow_origins": "AllowOrigins",
        "allow_methods": "AllowMethods",
        "allow_headers": "AllowHeaders",
        "expose_headers": "ExposeHeaders",
        "allow_credentials": "AllowCredentials",
        "max_age": "MaxAge",
    }
    unknown = sorted(set(value) - set(keys))
    if unknown:
        raise ConfigError(f"{where}: url.cors has unknown key(s) {', '.join(unknown)}")
    return cors_from_mapping({keys[k]: v for k, v in value.items()})


def cors_from_mapping(value: Mapping[str, Any]) -> Cors:
    """CORS settings in SAM's spelling (``AllowOrigins``, ``MaxAge``, ...)."""

    def strings(name: str) -> tuple[str, ...]:
        items: Sequence[Any] = value.get(name) or ()
        return tuple(str(item) for item in items)

    max_age = value.get("MaxAge")
    return Cors(
        allow_origins=strings("AllowOrigins"),
        allow_methods=tuple(m.upper() for m in strings("AllowMethods")),
        allow_headers=tuple(h.lower() for h in strings("AllowHeaders")),
        expose_headers=strings("ExposeHeaders"),
        allow_credentials=bool(value.get("AllowCredentials", False)),
        max_age_s=int(max_age) if max_age is not None else None,
    )

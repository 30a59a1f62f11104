"""Configuration: frozen dataclasses with units in their names, loaded from a TOML file, the environment and the
command line, with precedence (command line > environment > file) resolved in ``ServerConfig.load`` alone."""

from __future__ import annotations

import dataclasses
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from runtime_api.http import HttpLimits

from ..errors import ConfigError
from .events import EventsConfig, events_from_toml
from .http_routes import FunctionUrl, Route, routes_from_toml, url_from_toml
from .layers import check as check_layers
from .upstreams import UPSTREAM as UPSTREAM  # where it was defined before; still imported from here
from .upstreams import parse_upstream

# The local account: every served function's (its ARN), a template's AWS::AccountId, the embedded AWS endpoint's.
ACCOUNT_ID = "000000000000"

PLACEMENTS = ("mru", "lru", "random")
# Every Python and Node.js runtime Lambda offers; whether this machine can run one is checked when it is served.
PYTHON_RUNTIMES = ("python3.9", "python3.10", "python3.11", "python3.12", "python3.13", "python3.14")
NODE_RUNTIMES = ("nodejs18.x", "nodejs20.x", "nodejs22.x", "nodejs24.x")  # under npm aws-lambda-ric, on Node NN
RUNTIMES = (*PYTHON_RUNTIMES, *NODE_RUNTIMES, "provided", "provided.al2", "provided.al2023")
DEFAULT_TIMEOUT_S = 3.0
DEFAULT_MEMORY_MB = 128
INIT_TIMEOUT_S = 10.0  # Lambda's limit for the INIT phase of on-demand environments
_NAME = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
_ENV_NAME = re.compile(r"[a-zA-Z][a-zA-Z0-9_]*")  # Lambda: [a-zA-Z]([a-zA-Z0-9_])+; one letter is let through

# Variables Lambda sets itself; a function may not override them.
RESERVED_ENV = frozenset(
    {
        "_HANDLER",
        "_X_AMZN_TRACE_ID",
        "AWS_DEFAULT_REGION",
        "AWS_REGION",
        "AWS_EXECUTION_ENV",
        "AWS_LAMBDA_FUNCTION_NAME",
        "AWS_LAMBDA_FUNCTION_MEMORY_SIZE",
        "AWS_LAMBDA_FUNCTION_VERSION",
        "AWS_LAMBDA_INITIALIZATION_TYPE",
        "AWS_LAMBDA_LOG_GROUP_NAME",
        "AWS_LAMBDA_LOG_STREAM_NAME",
        "AWS_ACCESS_KEY",
        "AWS_ACCESS_KEY_ID",
        "AWS_SECRET_ACCESS_KEY",
        "AWS_SESSION_TOKEN",
        "AWS_LAMBDA_RUNTIME_API",
        "LAMBDA_TASK_ROOT",
        "LAMBDA_RUNTIME_DIR",
    }
)


@dataclass(frozen=True)
class FunctionConfig:
    name: str
    code_dir: Path
    handler: str
    runtime: str = "python3.11"
    timeout_s: float = DEFAULT_TIMEOUT_S
    memory_mb: int = DEFAULT_MEMORY_MB
    env: Mapping[str, str] = field(default_factory=dict)
    init_timeout_s: float = INIT_TIMEOUT_S
    # Concurrency and placement
    reserved_concurrency: int | None = None  # at most this many environments; beyond it, 429
    placement: str = "mru"  # which idle environment serves next: mru | lru | random
    # Lifetime: recycling (each value optionally randomised by ± recycle_jitter, a fraction) and proactive INIT
    idle_timeout_s: float | None = None
    max_age_s: float | None = None
    max_invocations: int | None = None
    recycle_jitter: float = 0.0
    prewarm: int = 0  # environments initialised at start, whether or not they are ever invoked
    replace_before_retire: bool = False  # a replacement runs INIT beside an environment before it is retired
    reset_on_timeout: bool = True  # False: a timed-out environment is frozen mid-handler and reused
    # Asynchronous invocation
    max_retry_attempts: int = 2
    max_event_age_s: float = 21600.0
    retry_delays_s: tuple[float, ...] = (60.0, 120.0)  # after the 1st and the 2nd failed attempt
    detect_leaks: bool = False  # flag responses and logs that carry an earlier invocation's event values
    lambda_paths: bool = True  # code at /var/task, layers at /opt (a private mount namespace, where the kernel allows)
    build: bool = True  # install the code directory's requirements.txt into a cached build, as sam build would
    layers: tuple[Path, ...] = ()  # local layer directories, in the order Lambda extracts them into /opt
    # Upstreams reached through the fault proxy: {"DB": "127.0.0.1:5432"} gives every environment a proxy port
    # of its own, in DB_HOST / DB_PORT.
    upstreams: Mapping[str, str] = field(default_factory=dict)
    region: str = "us-east-1"
    account_id: str = ACCOUNT_ID
    routes: tuple[Route, ...] = ()  # API Gateway routes (REST or HTTP API) served by the front door
    url: FunctionUrl | None = None  # a function URL, served by the front door
    # serve --debug-port: the runtime starts under a debugger listening here; its timeouts are suspended
    debug_port: int | None = None
    # The runtime's clocks can be moved forward while it is frozen (a virtual freeze: engine/clock.py)
    virtual_time: bool = False
    # The next environment's process made ahead of need, parked before its exec (engine/standby.py)
    standby: bool = True

    def __post_init__(self) -> None:
        if not _NAME.match(self.name):
            raise ConfigError(f"function name {self.name!r}: use 1-64 letters, digits, '-' or '_'")
        if self.runtime not in RUNTIMES:
            raise ConfigError(
                f"{self._subject}: unknown runtime {self.runtime!r}; choose one of {', '.join(RUNTIMES)}"
            )
        if self.code_dir.exists() and not self.code_dir.is_dir():
            raise ConfigError(
                f"{self._subject}: code directory {self.code_dir} is a file; name the folder that holds the "
                f"handler's code (here {self.code_dir.parent})"
            )
        if not self.code_dir.is_dir():
            raise ConfigError(f"{self._subject}: code directory {self.code_dir} does not exist")
        if not 1 <= self.timeout_s <= 900:
            raise ConfigError(f"{self._subject}: timeout must be 1-900 seconds, not {self.timeout_s}")
        if not 128 <= self.memory_mb <= 10240:
            raise ConfigError(f"{self._subject}: memory must be 128-10240 MB, not {self.memory_mb}")
        if self.virtual_time and self.runtime.startswith("provided"):
            raise ConfigError(
                f"{self._subject}: virtual time cannot move the clocks of a {self.runtime} runtime (a "
                "statically linked bootstrap reads the kernel's vDSO clock directly, past any preload); use real "
                "time (virtual_time = false) or a python or nodejs runtime"
            )
        if self.init_timeout_s <= 0:
            raise ConfigError(f"{self._subject}: init timeout must be positive")
        if not self.handler and self.runtime in (*PYTHON_RUNTIMES, *NODE_RUNTIMES):
            raise ConfigError(f"{self._subject}: a handler (module.function) is required for {self.runtime}")
        reserved = sorted(set(self.env) & RESERVED_ENV)
        if reserved:
            verb = "is" if len(reserved) == 1 else "are"
            raise ConfigError(f"{self._subject}: {', '.join(reserved)} {verb} reserved by Lambda and cannot be set")
        for key in self.env:
            if not _ENV_NAME.fullmatch(key):
                raise ConfigError(
                    f"{self._subject}: environment variable name {key!r}: Lambda accepts letters, digits and _, "
                    "starting with a letter"
                )
        self._check_lifetime()
        if self.debug_port is not None and not 1 <= self.debug_port <= 65535:
            raise ConfigError(f"{self._subject}: debug port {self.debug_port} is not a TCP port (1-65535)")
        check_layers(self.layers, self.name)
        for upstream, address in self.upstreams.items():
            if not re.fullmatch(r"[A-Z][A-Z0-9_]*", upstream):
                raise ConfigError(f"{self._subject}: upstream name {upstream!r}: use A-Z, 0-9 and _ (e.g. DB)")
            if parse_upstream(address) is None:
                raise ConfigError(
                    f"{self._subject}: upstream {upstream} = {address!r}: expected host:port, or a URL with a host "
                    "and a port (postgresql://user@127.0.0.1:5432/db: the function gets its own NAME_URL), "
                    "optionally followed by ' close=mirror|fin|rst' (how the proxy passes on the server's close)"
                )

    @property
    def _subject(self) -> str:
        """How messages name the function: "function orders", or "the function" for the default name."""
        return "the function" if self.name == "function" else f"function {self.name}"

    def _check_lifetime(self) -> None:
        def fail(what: str) -> None:
            raise ConfigError(f"{self._subject}: {what}")

        if self.reserved_concurrency is not None and self.reserved_concurrency < 0:
            fail("reserved concurrency must be 0 or more")
        if self.placement not in PLACEMENTS:
            fail(f"placement must be one of {', '.join(PLACEMENTS)}, not {self.placement!r}")
        for label, value in (("idle timeout", self.idle_timeout_s), ("max age", self.max_age_s)):
            if value is not None and value <= 0:
                fail(f"{label} must be positive")
        if self.max_invocations is not None and self.max_invocations < 1:
            fail("max invocations must be 1 or more")
        if not 0 <= self.recycle_jitter < 1:
            fail("recycle jitter is a fraction from 0 to below 1")
        if self.prewarm < 0 or (self.reserved_concurrency is not None and self.prewarm > self.reserved_concurrency):
            fail("prewarm must be 0 or more, and no more than the reserved concurrency")
        if not 0 <= self.max_retry_attempts <= 2:
            fail("maximum retry attempts must be 0, 1 or 2 (as Lambda allows)")
        if not 0 < self.max_event_age_s <= 21600:
            fail("maximum event age must be above 0 and at most 21600 seconds")
        if len(self.retry_delays_s) < self.max_retry_attempts or any(d < 0 for d in self.retry_delays_s):
            fail("retry delays: one non-negative delay (seconds) per retry attempt")

    @property
    def arn(self) -> str:
        return f"arn:aws:lambda:{self.region}:{self.account_id}:function:{self.name}"

    @classmethod
    def from_mapping(cls, name: str, data: Mapping[str, Any], *, base_dir: Path, where: str) -> FunctionConfig:
        """A function from a config file table; keys are the command line's option names (``timeout``, ...)."""
        keys = {"code_dir", "env", "upstreams", "routes", "url", "layers"}
        unknown = sorted(set(data) - set(FILE_KEYS) - keys)
        if unknown:
            known = ", ".join(sorted({*FILE_KEYS, *keys}))
            raise ConfigError(f"{where}: unknown key(s) {', '.join(unknown)}; known: {known}")
        if "code_dir" not in data:
            raise ConfigError(f"{where}: 'code_dir' is required")
        env = data.get("env", {})
        if not isinstance(env, dict) or not all(isinstance(v, (str, int, float, bool)) for v in env.values()):
            raise ConfigError(f"{where}: 'env' must be a table of strings")
        settings: dict[str, Any] = {}
        for key, value in data.items():
            if key in FILE_KEYS:
                field_name, parse = FILE_KEYS[key]
                try:
                    settings[field_name] = parse(value)
                except (TypeError, ValueError) as exc:
                    raise ConfigError(f"{where}: {key} = {value!r}: {exc}") from None
        layers = data.get("layers", [])
        if not isinstance(layers, list) or not all(isinstance(layer, str) for layer in layers):
            raise ConfigError(f"{where}: 'layers' must be a list of layer directories")
        upstreams = data.get("upstreams", {})
        if not isinstance(upstreams, dict):
            raise ConfigError(f"{where}: 'upstreams' must be a table of NAME = \"host:port\"")
        return cls(
            name=name,
            code_dir=(base_dir / str(data["code_dir"])).resolve(),
            env={str(k): str(v) for k, v in env.items()},
            upstreams={str(k): str(v) for k, v in upstreams.items()},
            routes=routes_from_toml(data["routes"], where) if "routes" in data else (),
            url=url_from_toml(data["url"], where) if "url" in data else None,
            layers=tuple((base_dir / layer).resolve() for layer in layers),
            **settings,
        )


def _bool(value: Any) -> bool:
    if not isinstance(value, bool):
        raise TypeError("expected true or false")
    return value


def _seconds_list(value: Any) -> tuple[float, ...]:
    if isinstance(value, str):
        value = value.split(",")
    return tuple(float(v) for v in value)


# Config file key -> (FunctionConfig field, parser); the keys match the command line's options.
FILE_KEYS: dict[str, tuple[str, Any]] = {
    "handler": ("handler", str),
    "runtime": ("runtime", str),
    "timeout": ("timeout_s", float),
    "memory": ("memory_mb", int),
    "init_timeout": ("init_timeout_s", float),
    "reserved_concurrency": ("reserved_concurrency", int),
    "placement": ("placement", str),
    "idle_timeout": ("idle_timeout_s", float),
    "max_age": ("max_age_s", float),
    "max_invocations": ("max_invocations", int),
    "recycle_jitter": ("recycle_jitter", float),
    "prewarm": ("prewarm", int),
    "replace_before_retire": ("replace_before_retire", _bool),
    "reset_on_timeout": ("reset_on_timeout", _bool),
    "maximum_retry_attempts": ("max_retry_attempts", int),
    "maximum_event_age": ("max_event_age_s", float),
    "retry_delays": ("retry_delays_s", _seconds_list),
    "detect_leaks": ("detect_leaks", _bool),
    "lambda_paths": ("lambda_paths", _bool),
    "build": ("build", _bool),
    "virtual_time": ("virtual_time", _bool),
    "standby": ("standby", _bool),
}


_HTTP = HttpLimits()


@dataclass(frozen=True)
class ServerConfig:
    host: str = "127.0.0.1"
    port: int = 8080
    freezer: str = "auto"
    account_concurrency: int = 1000  # environments across all functions; beyond it, 429
    state_dir: Path | None = None  # where async failures and undelivered events are kept
    api_port: int | None = None  # the HTTP front door (API routes, function URLs); None: not served, 0: any port
    functions: tuple[FunctionConfig, ...] = ()
    aws_endpoint: str | None = None  # the SQS/S3 endpoint functions reach; None: an embedded one when needed
    events: EventsConfig = field(default_factory=EventsConfig)  # queues, SQS mappings, schedules
    # The HTTP servers' timeouts (0 turns one off) and connection cap: runtime_api.http.HttpLimits
    http_header_timeout_s: float = _HTTP.header_timeout_s or 0.0
    http_idle_timeout_s: float = _HTTP.idle_timeout_s or 0.0
    http_body_timeout_s: float = _HTTP.body_timeout_s or 0.0
    http_max_connections: int = _HTTP.max_connections

    def http_limits(self) -> HttpLimits:
        return HttpLimits(
            header_timeout_s=self.http_header_timeout_s or None,
            idle_timeout_s=self.http_idle_timeout_s or None,
            body_timeout_s=self.http_body_timeout_s or None,
            max_connections=self.http_max_connections,
        )

    def __post_init__(self) -> None:
        if not 0 <= self.port <= 65535:
            raise ConfigError(f"port {self.port} is not a TCP port: use 1-65535, or 0 for any free port")

    @classmethod
    def load(
        cls,
        *,
        file: Path | None = None,
        cli: Mapping[str, Any] | None = None,
        environ: Mapping[str, str] | None = None,
    ) -> ServerConfig:
        """Resolve the settings: command line over ``LAMBDA_FREEZE_*`` variables over the TOML file."""
        environ = os.environ if environ is None else environ
        settings: dict[str, Any] = {}
        functions: list[FunctionConfig] = []
        if file is not None:
            file_settings, functions = _read_toml(file, overlays=bool((cli or {}).get("overlays")))
            settings.update(file_settings)
        for key, parse in (("host", str), ("port", int), ("freezer", str), ("state_dir", Path), ("api_port", int)):
            value = environ.get(f"LAMBDA_FREEZE_{key.upper()}")
            if value:
                try:
                    settings[key] = parse(value)
                except ValueError:
                    raise ConfigError(f"LAMBDA_FREEZE_{key.upper()}={value!r} is not a valid {key}") from None
        for key, value in (cli or {}).items():
            if value is not None:
                settings[key] = value
        extra = (cli or {}).get("functions")
        if extra:
            functions.extend(extra)
        settings.pop("functions", None)
        settings.pop("overlays", None)
        names = [f.name for f in functions]
        duplicates = sorted({n for n in names if names.count(n) > 1})
        if duplicates:
            raise ConfigError(f"function(s) defined twice: {', '.join(duplicates)}")
        return cls(**settings, functions=tuple(functions))

    def replace(self, **changes: Any) -> ServerConfig:
        return dataclasses.replace(self, **changes)


_HTTP_KEYS = ("http_header_timeout", "http_idle_timeout", "http_body_timeout", "http_max_connections")


def _read_toml(file: Path, overlays: bool = False) -> tuple[dict[str, Any], list[FunctionConfig]]:
    import tomllib  # only a --config file needs it

    try:
        text = file.read_text()
        data = tomllib.loads(text)
    except FileNotFoundError:
        raise ConfigError(f"config file {file} does not exist") from None
    except IsADirectoryError:
        raise ConfigError(f"config file {file} is a directory: name the TOML file (--config FILE)") from None
    except tomllib.TOMLDecodeError as exc:
        template = re.search(r"^(AWSTemplateFormatVersion|Resources)\s*:", text, re.M)
        if file.suffix in (".yaml", ".yml", ".json") or template:
            raise ConfigError(f"{file} is not TOML but looks like a SAM template: use --template {file}") from None
        raise ConfigError(f"{file}: {exc}") from None
    events = events_from_toml(data, file)
    unknown = sorted(set(data) - {"server", "functions"})
    if unknown:
        raise ConfigError(f"{file}: unknown table(s) {', '.join(unknown)}; expected [server] and [functions.NAME]")
    server = data.get("server", {})
    known = {"host", "port", "freezer", "account_concurrency", "state_dir", "api_port", "aws_endpoint", *_HTTP_KEYS}
    unknown = sorted(set(server) - known)
    if unknown:
        raise ConfigError(f"{file}: [server] has unknown key(s) {', '.join(unknown)}")
    for key in _HTTP_KEYS[:3]:  # seconds, as the functions' ``timeout``
        if key in server:
            server[f"{key}_s"] = float(server.pop(key))
    if "state_dir" in server:
        server["state_dir"] = (file.parent / str(server["state_dir"])).resolve()
    functions = [
        FunctionConfig.from_mapping(name, spec, base_dir=file.parent.resolve(), where=f"{file}: [functions.{name}]")
        for name, spec in data.get("functions", {}).items()
        if "code_dir" in spec or not overlays  # without code_dir: settings over a template's function (overrides.py)
    ]
    return {**server, "events": events}, functions


def parse_env_pairs(pairs: list[str] | None) -> dict[str, str]:
    env: dict[str, str] = {}
    for pair in pairs or []:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise ConfigError(f"--env {pair!r}: expected KEY=VALUE")
        env[key] = value
    return env

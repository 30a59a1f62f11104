"""Configuration readers: the settings themselves (``settings``: TOML, environment, command line), SAM templates
(``sam``) and the CloudFormation intrinsics they use (``cloudformation``). The settings' names are offered here,
where they have always been imported from (``emulator.config.FunctionConfig``)."""

from .settings import (
    DEFAULT_MEMORY_MB,
    DEFAULT_TIMEOUT_S,
    FILE_KEYS,
    INIT_TIMEOUT_S,
    NODE_RUNTIMES,
    PLACEMENTS,
    PYTHON_RUNTIMES,
    RESERVED_ENV,
    RUNTIMES,
    UPSTREAM,
    FunctionConfig,
    ServerConfig,
    parse_env_pairs,
)

__all__ = [
    "DEFAULT_MEMORY_MB",
    "DEFAULT_TIMEOUT_S",
    "FILE_KEYS",
    "INIT_TIMEOUT_S",
    "NODE_RUNTIMES",
    "PLACEMENTS",
    "PYTHON_RUNTIMES",
    "RESERVED_ENV",
    "RUNTIMES",
    "UPSTREAM",
    "FunctionConfig",
    "ServerConfig",
    "parse_env_pairs",
]

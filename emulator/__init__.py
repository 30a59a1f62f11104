"""lambda-freeze's engine: functions, execution environments that freeze between invocations, freezer backends."""

from .config import FunctionConfig, ServerConfig
from .errors import ConfigError, LambdaFreezeError
from .server import Emulator

__all__ = ["ConfigError", "Emulator", "FunctionConfig", "LambdaFreezeError", "ServerConfig"]

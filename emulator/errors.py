"""The one error hierarchy of the engine; Lambda-facing errors carry Lambda's errorType and HTTP status."""

from __future__ import annotations

from collections.abc import Mapping


class LambdaFreezeError(Exception):
    """Base class. ``error_type`` is Lambda's name for the error, ``status`` the HTTP status it is answered with."""

    error_type = "ServiceException"
    status = 500

    def __init__(self, message: str, *, extra: Mapping[str, str] | None = None):
        super().__init__(message)
        self.message = message
        self.extra: Mapping[str, str] = extra or {}


class ConfigError(LambdaFreezeError):
    """A function or server configuration that cannot work; the message says how to fix it."""

    error_type = "InvalidParameterValueException"
    status = 400


class FunctionNotFound(LambdaFreezeError):
    error_type = "ResourceNotFoundException"
    status = 404


class InvalidRequestID(LambdaFreezeError):
    """A runtime named a request id that is unknown, stale, or already answered."""

    error_type = "InvalidRequestID"
    status = 400


class InvalidStateTransition(LambdaFreezeError):
    """A Runtime API call the environment's current state does not allow."""

    error_type = "InvalidStateTransition"
    status = 403


class EnvironmentGone(LambdaFreezeError):
    """The environment is shutting down; its runtime must exit (RAPID answers 500 here too)."""

    error_type = "Runtime.Stopped"
    status = 500


class FreezerUnavailable(LambdaFreezeError):
    """A freezer backend cannot work on this machine; the message says why."""

    error_type = "FreezerUnavailable"

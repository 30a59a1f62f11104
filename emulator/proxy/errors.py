"""The fault proxy's errors: misuse of its management API, named so that the message says what to do."""

from __future__ import annotations

from ..errors import LambdaFreezeError


class ProxyError(LambdaFreezeError):
    """The proxy was asked for something it cannot do (unknown toxic, duplicate name, environment not listening)."""

    error_type = "InvalidParameterValueException"
    status = 400

"""The control plane's engine side (``runtime_api.control.ControlBackend``): the functions served, described as
Lambda's ListFunctions, GetFunction, GetFunctionConfiguration and GetAccountSettings answer."""

from __future__ import annotations

import base64
import hashlib
import os
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path

from ..config.settings import FunctionConfig
from ..engine.pool import FunctionPool

# AWS's account limits, as GetAccountSettings reports them for a default account.
TOTAL_CODE_SIZE_BYTES = 80 * 1024**3
CODE_SIZE_UNZIPPED_BYTES = 250 * 1024**2
CODE_SIZE_ZIPPED_BYTES = 50 * 1024**2
_SKIPPED_DIRS = frozenset({"__pycache__", ".git"})


def code_summary(code_dir: Path) -> tuple[int, str, datetime]:
    """Size in bytes, a SHA-256 (base64) and the newest change of the code directory's files.

    The hash covers each file's relative path, size and modification time, not a zip's bytes (there is no zip):
    it changes whenever the code does, which is what a caller comparing ``CodeSha256`` values looks for.
    """
    digest = hashlib.sha256()
    size = 0
    newest = 0.0
    for root, dirs, files in os.walk(code_dir):
        dirs[:] = sorted(d for d in dirs if d not in _SKIPPED_DIRS)
        for name in sorted(files):
            path = Path(root, name)
            try:
                stat = path.stat()
            except OSError:
                continue
            size += stat.st_size
            newest = max(newest, stat.st_mtime)
            digest.update(f"{path.relative_to(code_dir)}\0{stat.st_size}\0{stat.st_mtime_ns}\n".encode())
    return size, base64.b64encode(digest.digest()).decode(), datetime.fromtimestamp(newest or 0, UTC)


def function_configuration(config: FunctionConfig) -> dict[str, object]:
    size, sha256, modified = code_summary(config.code_dir)
    configuration: dict[str, object] = {
        "FunctionName": config.name,
        "FunctionArn": config.arn,
        "Runtime": config.runtime,
        "Role": f"arn:aws:iam::{config.account_id}:role/lambda-freeze",
        "Handler": config.handler,
        "CodeSize": size,
        "Description": "",
        "Timeout": _whole(config.timeout_s),
        "MemorySize": config.memory_mb,
        # AWS's own format: 2024-01-31T12:34:56.789+0000
        "LastModified": modified.strftime("%Y-%m-%dT%H:%M:%S.") + f"{modified.microsecond // 1000:03d}+0000",
        "CodeSha256": sha256,
        "Version": "$LATEST",
        "TracingConfig": {"Mode": "PassThrough"},
        "RevisionId": hashlib.sha256(sha256.encode()).hexdigest()[:32],
        "State": "Active",
        "LastUpdateStatus": "Successful",
        "PackageType": "Zip",
        "Architectures": ["x86_64" if os.uname().machine in ("x86_64", "AMD64") else "arm64"],
        "EphemeralStorage": {"Size": 512},
        "SnapStart": {"ApplyOn": "None", "OptimizationStatus": "Off"},
        "LoggingConfig": {"LogFormat": "Text", "LogGroup": f"/aws/lambda/{config.name}"},
    }
    if config.env:
        configuration["Environment"] = {"Variables": dict(config.env)}
    return configuration


def _whole(seconds: float) -> int | float:
    return int(seconds) if float(seconds).is_integer() else seconds


class ControlPlane:
    def __init__(
        self,
        functions: Mapping[str, FunctionPool],
        resolve: Callable[[str, str | None], FunctionPool],
        account_concurrency: int,
    ):
        self._functions = functions  # the emulator's own table: functions added later are listed too
        self._resolve = resolve
        self._account_concurrency = account_concurrency

    def function_configurations(self) -> Sequence[Mapping[str, object]]:
        return [function_configuration(self._functions[name].config) for name in sorted(self._functions)]

    def get_function(self, name: str, qualifier: str | None) -> Mapping[str, object]:
        config = self._resolve(name, qualifier).config
        answer: dict[str, object] = {
            "Configuration": function_configuration(config),
            # Lambda answers a presigned S3 URL of the deployment package; the code is a local directory here.
            "Code": {"RepositoryType": "S3", "Location": config.code_dir.resolve().as_uri()},
            "Tags": {},
        }
        if config.reserved_concurrency is not None:
            answer["Concurrency"] = {"ReservedConcurrentExecutions": config.reserved_concurrency}
        return answer

    def account_settings(self) -> Mapping[str, object]:
        configs = [pool.config for pool in self._functions.values()]
        reserved = sum(config.reserved_concurrency or 0 for config in configs)
        return {
            "AccountLimit": {
                "TotalCodeSize": TOTAL_CODE_SIZE_BYTES,
                "CodeSizeUnzipped": CODE_SIZE_UNZIPPED_BYTES,
                "CodeSizeZipped": CODE_SIZE_ZIPPED_BYTES,
                "ConcurrentExecutions": self._account_concurrency,
                "UnreservedConcurrentExecutions": max(0, self._account_concurrency - reserved),
            },
            "AccountUsage": {
                "TotalCodeSize": sum(code_summary(config.code_dir)[0] for config in configs),
                "FunctionCount": len(configs),
            },
        }

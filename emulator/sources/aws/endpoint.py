"""The endpoint every function's AWS SDK reaches through ``AWS_ENDPOINT_URL``: the one given (LocalStack, ElasticMQ,
real AWS) or an embedded moto server, started on a free loopback port and stopped with the emulator."""

from __future__ import annotations

import asyncio
import logging
import os
import subprocess
import sys
from typing import Any

from ...config.settings import ACCOUNT_ID
from ...errors import ConfigError

log = logging.getLogger("lambda_freeze.aws")

START_TIMEOUT_S = 30.0
# Placeholder credentials: moto and LocalStack accept any; real AWS takes the caller's own from the environment.
LOCAL_CREDENTIALS = {"aws_access_key_id": "lambda-freeze-local", "aws_secret_access_key": "lambda-freeze-local"}


class AwsEndpoint:
    """``await start()`` → ``url``, ``client(service)`` → ``await close()``."""

    def __init__(
        self, url: str | None, *, region: str = "us-east-1", account_id: str = ACCOUNT_ID
    ):
        self.given = url
        self.region = region
        # The embedded server's account: the served functions' (their ARNs, a template's !GetAtt Queue.Arn), so that
        # the queue ARNs it gives (eventSourceARN, dead-letter targets) are the ones the configuration names.
        self.account_id = account_id
        self._process: subprocess.Popen[bytes] | None = None
        self.url = url or ""

    @property
    def embedded(self) -> bool:
        return self.given is None

    async def start(self) -> None:
        if self.given is None:
            # Spawned from the event loop's thread, which lives as long as the emulator: the parent-death signal
            # follows the thread that forked, so a worker thread's end would take the server with it.
            self._spawn_embedded()
            self.url = await asyncio.to_thread(self._read_port)
            log.info("embedded SQS/S3 endpoint (moto) on %s", self.url)

    def _spawn_embedded(self) -> None:
        try:
            import moto  # noqa: F401  (only to name the fix when it is missing)
        except ImportError:
            raise ConfigError(
                "queues, buckets and SQS mappings need an SQS/S3 endpoint: install the embedded one with "
                "pip install 'lambda-freeze[aws]', or name one with --aws-endpoint URL"
            ) from None
        self._process = subprocess.Popen(
            [sys.executable, "-m", "emulator.sources.aws.moto_child"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            env={**os.environ, "LAMBDA_FREEZE_PARENT_PID": str(os.getpid()), "MOTO_ACCOUNT_ID": self.account_id},
        )

    def _read_port(self) -> str:
        assert self._process is not None and self._process.stdout is not None
        line = self._process.stdout.readline()
        if not line.strip().isdigit():
            self._stop_embedded()
            raise ConfigError("the embedded SQS/S3 endpoint (moto) did not start; see its output above")
        return f"http://127.0.0.1:{int(line)}"

    @property
    def pid(self) -> int | None:
        """The embedded server's process, while it runs."""
        return self._process.pid if self._process is not None else None

    def client(self, service: str, **config: Any) -> Any:
        import boto3
        from botocore.config import Config

        # A named endpoint uses the caller's credentials when there are any (real AWS needs them); LocalStack,
        # ElasticMQ and moto take anything.
        local = self.embedded or boto3.Session().get_credentials() is None
        credentials = LOCAL_CREDENTIALS if local else {}
        return boto3.client(
            service,
            endpoint_url=self.url,
            region_name=self.region,
            config=Config(retries={"max_attempts": 2, "mode": "standard"}, **config),
            **credentials,
        )

    def function_env(self) -> dict[str, str]:
        """What a function gets so that its SDK reaches this endpoint (the Lambda endpoint stays lambda-freeze)."""
        return {"AWS_ENDPOINT_URL": self.url}

    def _stop_embedded(self) -> None:
        process, self._process = self._process, None
        if process is None:
            return
        if process.stdin is not None:
            process.stdin.close()  # EOF: the server exits
        try:
            process.wait(5.0)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        if process.stdout is not None:
            process.stdout.close()

    async def close(self) -> None:
        await asyncio.to_thread(self._stop_embedded)

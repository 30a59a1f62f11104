"""The embedded SQS/S3 endpoint: started by `lambda-freeze serve` when the configuration has queues, reached by
the functions' SDK through AWS_ENDPOINT_URL, and gone when lambda-freeze is, however it ends."""

from __future__ import annotations

import json
import signal
from pathlib import Path

import boto3
import pytest
from sqs_support import moto_installed
from test_cli import Serve, wait_gone

from conftest import FUNCTIONS, lambda_client, require

pytestmark = pytest.mark.timeout(90)


def moto_children(parent: int) -> list[int]:
    found = []
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            stat = (proc / "stat").read_text()
            cmdline = (proc / "cmdline").read_bytes()
        except OSError:
            continue
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        if ppid == parent and b"emulator.sources.aws.moto_child" in cmdline:
            found.append(int(proc.name))
    return found


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGKILL], ids=["SIGTERM", "SIGKILL"])
def test_the_embedded_endpoint_serves_the_function_and_goes_with_lambda_freeze(tmp_path, sig):
    require(moto_installed(), "moto[server] (pip install 'lambda-freeze[aws]') for the embedded SQS endpoint")
    config = tmp_path / "functions.toml"
    config.write_text(
        f"""
[queues.inbox]

[functions.fn]
code_dir = "{FUNCTIONS / "python" / "basic"}"
handler = "app.handler"
"""
    )
    serve = Serve("--config", str(config))
    stopped = False
    try:
        (child,) = moto_children(serve.proc.pid)
        client = lambda_client(serve.url)
        answer = client.invoke(FunctionName="fn", Payload=json.dumps({"action": "env"}))
        env = json.loads(answer["Payload"].read())
        endpoint = env["AWS_ENDPOINT_URL"]
        assert endpoint.startswith("http://127.0.0.1:") and endpoint != serve.url
        assert env["AWS_ENDPOINT_URL_LAMBDA"] == serve.url  # Lambda calls still reach lambda-freeze
        sqs = boto3.client(
            "sqs", endpoint_url=endpoint, region_name="us-east-1", aws_access_key_id="x", aws_secret_access_key="x"
        )
        assert sqs.get_queue_url(QueueName="inbox")["QueueUrl"].endswith("/inbox")
        serve.stop(sig)
        stopped = True
        assert wait_gone(child, 10.0), f"the embedded endpoint {child} outlived lambda-freeze ({sig.name})"
    finally:
        if not stopped:
            serve.stop(signal.SIGKILL)

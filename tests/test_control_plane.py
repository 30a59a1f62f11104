"""ListFunctions, GetFunction, GetFunctionConfiguration and GetAccountSettings, called by boto3 and the AWS CLI
against a live emulator, answered in AWS's shapes."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from conftest import FUNCTIONS, Served, require
from emulator.sources.control_plane import code_summary

pytestmark = pytest.mark.timeout(60)


def _aws(served: Served, *args: str) -> Any:
    """The AWS CLI installed beside this interpreter (constraints.txt pins it)."""
    aws = shutil.which("aws", path=str(Path(sys.executable).parent))
    require(aws is not None, "the AWS CLI (pip install awscli) is not installed beside this interpreter")
    assert aws is not None
    env = {
        **os.environ,
        "AWS_ACCESS_KEY_ID": "lambda-freeze",
        "AWS_SECRET_ACCESS_KEY": "lambda-freeze",
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_CONFIG_FILE": os.devnull,
        "AWS_SHARED_CREDENTIALS_FILE": os.devnull,
    }
    done = subprocess.run(
        [aws, "lambda", *args, "--endpoint-url", served.emulator.url, "--output", "json"],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
    )
    return done.returncode, json.loads(done.stdout) if done.stdout.strip() else None, done.stderr


def test_boto3_list_functions_and_get_function(serve: Callable[..., Served]) -> None:
    fn = serve("python/basic", name="orders", timeout_s=6, memory_mb=256, env={"TABLE": "orders"})
    listed = fn.client.list_functions()["Functions"]
    assert [f["FunctionName"] for f in listed] == ["orders"]
    [config] = listed
    assert config["FunctionArn"] == "arn:aws:lambda:us-east-1:000000000000:function:orders"
    assert (config["Runtime"], config["Handler"], config["Timeout"], config["MemorySize"]) == (
        "python3.11",
        "app.handler",
        6,
        256,
    )
    assert config["Environment"] == {"Variables": {"TABLE": "orders"}}
    assert config["State"] == "Active" and config["PackageType"] == "Zip"
    assert config["CodeSize"] == code_summary(FUNCTIONS / "python/basic")[0] > 0

    got = fn.client.get_function(FunctionName="orders")
    assert got["Configuration"] == config
    assert got["Code"]["Location"] == (FUNCTIONS / "python/basic").resolve().as_uri()
    assert fn.client.get_function_configuration(FunctionName="orders") == {
        **config,
        "ResponseMetadata": fn.client.get_function_configuration(FunctionName="orders")["ResponseMetadata"],
    }
    # A waiter users' deploy scripts call before invoking: it passes at once, the function being Active.
    fn.client.get_waiter("function_active_v2").wait(FunctionName="orders")


def test_boto3_unknown_function_is_resource_not_found(serve: Callable[..., Served]) -> None:
    fn = serve("python/basic", name="orders")
    with pytest.raises(fn.client.exceptions.ResourceNotFoundException, match="Function not found"):
        fn.client.get_function(FunctionName="nope")
    with pytest.raises(fn.client.exceptions.ResourceNotFoundException):
        fn.client.get_function_configuration(FunctionName="orders", Qualifier="7")


def test_boto3_paginates_list_functions(serve: Callable[..., Served]) -> None:
    from emulator import FunctionConfig

    fn = serve("python/basic", name="a")

    async def add(emulator: Any) -> None:
        for name in ("b", "c"):
            emulator.add_function(FunctionConfig(name=name, code_dir=FUNCTIONS / "python/basic", handler="app.handler"))

    fn.emulator.call(add)
    pages = fn.client.get_paginator("list_functions").paginate(PaginationConfig={"PageSize": 2})
    assert [[f["FunctionName"] for f in page["Functions"]] for page in pages] == [["a", "b"], ["c"]]


def test_boto3_account_settings(serve: Callable[..., Served]) -> None:
    fn = serve("python/basic", name="orders", reserved_concurrency=4, server={"account_concurrency": 50})
    settings = fn.client.get_account_settings()
    assert settings["AccountLimit"]["ConcurrentExecutions"] == 50
    assert settings["AccountLimit"]["UnreservedConcurrentExecutions"] == 46
    assert settings["AccountUsage"]["FunctionCount"] == 1


def test_aws_cli_list_functions_and_get_function(serve: Callable[..., Served]) -> None:
    fn = serve("python/basic", name="orders")
    status, listed, err = _aws(fn, "list-functions")
    assert status == 0, err
    assert [f["FunctionName"] for f in listed["Functions"]] == ["orders"]
    status, got, err = _aws(fn, "get-function", "--function-name", "orders")
    assert status == 0, err
    assert got["Configuration"]["Handler"] == "app.handler"
    status, config, err = _aws(fn, "get-function-configuration", "--function-name", "orders")
    assert status == 0 and config["FunctionName"] == "orders", err
    status, _, err = _aws(fn, "get-function", "--function-name", "missing")
    assert status != 0 and "ResourceNotFoundException" in err

"""Messages a newcomer meets in the first hour: each names what is wrong and what to do, with no traceback; the
settings of the pytest fixtures speak the config file's vocabulary; a DATABASE_URL goes through the fault proxy."""

from __future__ import annotations

import subprocess
import textwrap
from pathlib import Path

import pytest
from test_cli import command

from conftest import FUNCTIONS
from emulator.config.keys import function_settings, known_keys
from emulator.config.settings import FunctionConfig, ServerConfig
from emulator.config.upstreams import parse_upstream
from emulator.engine.logs import StreamSink
from emulator.errors import ConfigError

pytestmark = pytest.mark.timeout(60)
BASIC = str(FUNCTIONS / "python/basic")


def serve(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*command(), "serve", "--no-reload", *args],
        capture_output=True,
        text=True,
        timeout=30,
        stdin=subprocess.DEVNULL,
    )


def assert_message(done: subprocess.CompletedProcess[str], text: str) -> None:
    assert done.returncode == 2, done.stderr
    assert text in done.stderr
    assert "Traceback" not in done.stderr


def test_a_port_out_of_range():
    assert_message(
        serve("--code-dir", BASIC, "--handler", "app.handler", "--port", "99999"),
        "port 99999 is not a TCP port: use 1-65535, or 0 for any free port",
    )


def test_an_address_of_no_interface_blames_the_host_not_the_port():
    done = serve("--code-dir", BASIC, "--handler", "app.handler", "--host", "10.9.9.9", "--port", "0")
    assert_message(done, "no interface of this machine has that address: --host 127.0.0.1, or 0.0.0.0 for all")
    assert "--port" not in done.stderr


def test_a_code_dir_that_is_a_file():
    assert_message(
        serve("--code-dir", f"{BASIC}/app.py", "--handler", "app.handler"),
        f"the function: code directory {BASIC}/app.py is a file; name the folder that holds the handler's code "
        f"(here {BASIC})",
    )


def test_an_environment_variable_name_lambda_rejects():
    assert_message(
        serve("--code-dir", BASIC, "--handler", "app.handler", "--env", "FOO BAR=1"),
        "environment variable name 'FOO BAR': Lambda accepts letters, digits and _, starting with a letter",
    )


def test_one_reserved_variable_is_singular():
    assert_message(
        serve("--code-dir", BASIC, "--handler", "app.handler", "--env", "AWS_REGION=eu-west-1"),
        "the function: AWS_REGION is reserved by Lambda and cannot be set",
    )
    with pytest.raises(ConfigError, match="AWS_REGION, LAMBDA_TASK_ROOT are reserved"):
        FunctionConfig("f", Path(BASIC), "app.handler", env={"AWS_REGION": "x", "LAMBDA_TASK_ROOT": "y"})


def test_the_default_name_is_not_repeated():
    done = serve("--code-dir", "/nonexistent/code", "--handler", "app.handler")
    assert_message(done, "the function: code directory /nonexistent/code does not exist")
    assert "function function" not in done.stderr


def test_a_sam_template_given_as_config(tmp_path: Path):
    template = tmp_path / "template.yaml"
    template.write_text("AWSTemplateFormatVersion: '2010-09-09'\nTransform: AWS::Serverless-2016-10-31\n")
    assert_message(serve("--config", str(template)), f"looks like a SAM template: use --template {template}")


def test_a_directory_given_as_config(tmp_path: Path):
    assert_message(serve("--config", str(tmp_path)), f"config file {tmp_path} is a directory")


def test_server_config_checks_the_port():
    with pytest.raises(ConfigError, match="port -1 is not a TCP port"):
        ServerConfig(port=-1)


def test_a_traceback_reads_as_lines_on_a_terminal(tmp_path: Path):
    out = tmp_path / "out.txt"
    with out.open("w") as stream:
        StreamSink(stream)("fn", "fn-1", "[ERROR] ValueError: boom\rTraceback (most recent call last):\r  File x")
    lines = ["[ERROR] ValueError: boom", "Traceback (most recent call last):", "  File x"]
    assert out.read_text().splitlines() == lines


# ------------------------------------------------------------------------------------------- one vocabulary
def test_settings_by_the_config_file_keys_and_by_field_names():
    assert function_settings({"timeout": 6, "memory": 256, "reserved_concurrency": 2}) == {
        "timeout_s": 6.0,
        "memory_mb": 256,
        "reserved_concurrency": 2,
    }
    assert function_settings({"timeout_s": 6}) == {"timeout_s": 6}


def test_an_unknown_setting_lists_the_known_ones():
    with pytest.raises(ConfigError) as caught:
        function_settings({"timeout_ms": 10}, where="lambda_freeze.function()")
    assert "lambda_freeze.function(): unknown setting 'timeout_ms'; known: " in caught.value.message
    assert "timeout" in known_keys() and "memory" in known_keys() and "upstreams" in known_keys()


def test_the_fixture_takes_the_config_file_keys(lambda_freeze):
    fn = lambda_freeze.function(BASIC, timeout=5, memory=256)
    assert (fn.config.timeout_s, fn.config.memory_mb) == (5.0, 256)
    with pytest.raises(ConfigError, match="unknown setting 'timout'; known: "):
        lambda_freeze.function(BASIC, timout=5)


# ----------------------------------------------------------------------------------- DATABASE_URL and the proxy
def test_an_upstream_given_as_a_url():
    upstream = parse_upstream("postgresql://app@127.0.0.1:5432/test close=fin")
    assert upstream is not None and (upstream.host, upstream.port, upstream.close) == ("127.0.0.1", 5432, "fin")
    assert upstream.variables("DATABASE", "127.0.0.1", 40001) == {
        "DATABASE_HOST": "127.0.0.1",
        "DATABASE_PORT": "40001",
        "DATABASE_URL": "postgresql://app@127.0.0.1:40001/test",
    }
    assert parse_upstream("postgresql://nohost/test") is None
    assert parse_upstream("127.0.0.1:5432").url is None  # type: ignore[union-attr]


def test_a_function_reading_database_url_goes_through_the_fault_proxy(
    tmp_path: Path, lambda_freeze, lambda_freeze_postgres
):
    (tmp_path / "requirements.txt").write_text("asyncpg==0.32.0\n")  # declared, as on Lambda
    (tmp_path / "app.py").write_text(
        textwrap.dedent(
            """
            import asyncio, os
            import asyncpg

            def handler(event, context):
                async def query():
                    conn = await asyncpg.connect(os.environ["DATABASE_URL"])
                    try:
                        return await conn.fetchval("SELECT current_user")
                    finally:
                        await conn.close()
                return {"url": os.environ["DATABASE_URL"], "user": asyncio.run(query())}
            """
        )
    )
    (tmp_path / "requirements.txt").write_text("asyncpg==0.32.0\n")  # as the function's own dependency
    db = lambda_freeze_postgres()
    assert db.env()["DB_URL"] == db.dsn
    fn = lambda_freeze.function(tmp_path, upstreams={"DATABASE": db.dsn}, timeout=10)
    result = fn.invoke({})
    assert result.ok, result.payload
    assert result.payload["user"] == db.user
    assert result.payload["url"] != db.dsn  # the environment's own proxy port, not the server's
    kinds = [event["kind"] for event in fn.faults("DATABASE").events()]
    assert "connect" in kinds and "upstream" in kinds, kinds

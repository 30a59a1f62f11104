"""A runtime or an extension that cannot start: the invocation gets Lambda's error, every invocation after it does
too (no hang, no environment left behind)."""

from __future__ import annotations

from pathlib import Path

import pytest

pytestmark = pytest.mark.timeout(60)


def code_dir(tmp_path: Path, bootstrap: str, mode: int) -> Path:
    code = tmp_path / "code"
    code.mkdir()
    (code / "bootstrap").write_text(bootstrap)
    (code / "bootstrap").chmod(mode)
    return code


def assert_every_invocation_fails(fn, error_type: str, message_start: str) -> None:
    for _ in range(2):  # the failed environment is gone; the next invocation tries again and fails the same way
        result = fn.invoke({})
        assert result.function_error == "Unhandled"
        assert result.payload["errorType"] == error_type
        assert result.payload["errorMessage"].startswith(message_start), result.payload
        fn.wait_envs(lambda envs: envs == [])


def test_a_bootstrap_without_the_execute_bit(serve, tmp_path):
    fn = serve(str(code_dir(tmp_path, "#!/bin/sh\nexit 0\n", 0o644)), runtime="provided", handler="x")
    assert_every_invocation_fails(fn, "Runtime.InvalidEntrypoint", "bootstrap ")
    assert "is not executable (chmod +x)" in fn.invoke({}).payload["errorMessage"]


def test_a_function_that_will_fail_to_start_is_warned_about_when_serving_begins(serve, tmp_path, caplog):
    with caplog.at_level("WARNING", logger="lambda_freeze.function"):
        serve("python/basic", name="fine")
        assert not [r for r in caplog.records if "will fail to start" in r.getMessage()]
        serve(str(code_dir(tmp_path, "#!/bin/sh\nexit 0\n", 0o644)), runtime="provided", handler="x")
    (warning,) = [r.getMessage() for r in caplog.records if "will fail to start" in r.getMessage()]
    assert warning.startswith("function fn will fail to start: bootstrap ") and "is not executable" in warning


def test_a_bootstrap_the_kernel_cannot_run(serve, tmp_path):
    # Executable, but its interpreter does not exist: exec fails in the child, and Popen raises it in the parent.
    fn = serve(str(code_dir(tmp_path, "#!/nonexistent/interpreter\n", 0o755)), runtime="provided", handler="x")
    assert_every_invocation_fails(fn, "Runtime.InvalidEntrypoint", "cannot start the runtime: ")


def test_a_bootstrap_in_no_executable_format(serve, tmp_path):
    fn = serve(str(code_dir(tmp_path, "not a program\n", 0o755)), runtime="provided", handler="x")
    assert_every_invocation_fails(fn, "Runtime.InvalidEntrypoint", "cannot start the runtime: ")


def test_an_extension_the_kernel_cannot_run(serve, tmp_path):
    code = tmp_path / "code"
    (code / "extensions").mkdir(parents=True)
    (code / "app.py").write_text("def handler(event, context):\n    return 'ok'\n")
    (code / "extensions" / "broken").write_text("#!/nonexistent/interpreter\n")
    (code / "extensions" / "broken").chmod(0o755)
    fn = serve(str(code))
    assert_every_invocation_fails(fn, "Extension.LaunchError", f"cannot start {code / 'extensions' / 'broken'}: ")

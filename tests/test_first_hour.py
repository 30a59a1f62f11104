"""What a newcomer sees first: ``--version``, help that shows the defaults, and an install without a wall of
packaging warnings."""

from __future__ import annotations

import subprocess
import sys
import zipfile
from importlib.metadata import version
from pathlib import Path

import pytest
from test_cli import command

pytestmark = pytest.mark.timeout(180)
ROOT = Path(__file__).parent.parent


def test_version():
    done = subprocess.run([*command(), "--version"], capture_output=True, text=True, timeout=30)
    assert done.returncode == 0 and done.stdout.strip() == f"lambda-freeze {version('lambda-freeze')}"


def test_serve_help_shows_the_defaults():
    done = subprocess.run([*command(), "serve", "--help"], capture_output=True, text=True, timeout=30)
    text = " ".join(done.stdout.split())
    for shown in ("(default: 3.0)", "(default: 128)", "(default: python3.11)", "(default: function)"):
        assert shown in text, shown


def test_the_wheel_builds_without_packaging_warnings(tmp_path: Path):
    done = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "-w", str(tmp_path), str(ROOT)],
        capture_output=True,
        text=True,
        timeout=170,
    )
    assert done.returncode == 0, done.stderr
    assert "would be ignored" not in done.stderr and "BuildBackendWarning" not in done.stderr, done.stderr
    [wheel] = tmp_path.glob("*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    assert "emulator/nodejs/package-lock.json" in names and "runtime_api/openapi.yaml" in names
    assert "emulator/sources/events/s3.py" in names


def test_health_checks_run_the_same_under_docker_and_podman():
    """Podman's API joins an exec-form command and splits it at spaces again: no argument may hold a space."""
    import yaml

    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    for name, service in compose["services"].items():
        test = service.get("healthcheck", {}).get("test")
        if test and test[0] == "CMD":
            assert all(" " not in str(arg) for arg in test[1:]), (name, test)


def test_the_emulator_health_check_passes_against_a_live_emulator():
    import signal

    import yaml
    from test_cli import Serve

    from conftest import FUNCTIONS

    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    _, program, *args = compose["services"]["lambda-freeze"]["healthcheck"]["test"]
    serve = Serve("--code-dir", str(FUNCTIONS / "python/basic"), "--handler", "app.handler", "--no-reload")
    try:
        port = serve.url.rsplit(":", 1)[1]
        probe = [arg.replace("127.0.0.1:8080", f"127.0.0.1:{port}") for arg in args]
        assert program == "python"
        assert subprocess.run([sys.executable, *probe], timeout=30).returncode == 0
    finally:
        serve.stop(signal.SIGTERM)


def test_the_readme_pytest_example_runs_as_pasted_into_another_project(pytester):
    """The README's example, pasted into a project of its own whose function sits beside the test file."""
    import re
    import shutil

    readme = (ROOT / "README.md").read_text()
    section = readme[readme.index("## In pytest\n") :]
    example = re.search(r"```python\n(.*?)```", section, re.S)
    assert example is not None
    functions = pytester.path / "tests" / "functions" / "orders"
    shutil.copytree(ROOT / "samples/python/asyncpg_pool/fixed", functions)
    (pytester.path / "tests" / "test_orders.py").write_text(example[1])
    result = pytester.runpytest_subprocess("-q", "-p", "no:cacheprovider", "tests/test_orders.py")
    result.assert_outcomes(passed=1)

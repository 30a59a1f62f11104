"""A Python function's dependencies as ``sam build`` makes them: the ``requirements.txt`` of its code directory
installed with pip, by the runtime's own interpreter, into a build cached under ``<build root>/<runtime>-<sha256 of
the file>``, so that an unchanged file is never installed twice and a changed one never runs against a stale build.

The build root is ``$LAMBDA_FREEZE_BUILD_DIR``, else ``$XDG_CACHE_HOME/lambda-freeze/builds``, else
``~/.cache/lambda-freeze/builds``. On Lambda the packages sit beside the code in ``/var/task``; here the build comes
right after the code directory on ``sys.path`` (``PYTHONPATH``), before the runtime's own boto3, as there.
"""

from __future__ import annotations

import fcntl
import hashlib
import os
import shutil
import subprocess
import tempfile
from collections.abc import Callable
from pathlib import Path

from ..errors import LambdaFreezeError
from . import python_runtime

CACHE_DIR_VARIABLE = "LAMBDA_FREEZE_BUILD_DIR"
REQUIREMENTS = "requirements.txt"
_STAMP = ".lambda-freeze-build"


class BuildFailed(LambdaFreezeError):
    """pip could not install a function's requirements; the message is pip's own."""

    error_type = "BuildFailed"


def cache_root() -> Path:
    if configured := os.environ.get(CACHE_DIR_VARIABLE):
        return Path(configured)
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "lambda-freeze" / "builds"


def requirements_of(code_dir: Path) -> Path | None:
    found = code_dir / REQUIREMENTS
    return found if found.is_file() else None


def build_dir(code_dir: Path, runtime: str) -> Path | None:
    """Where the build of ``code_dir``'s requirements for ``runtime`` goes (None: nothing to build)."""
    requirements = requirements_of(code_dir)
    if requirements is None:
        return None
    digest = hashlib.sha256(requirements.read_bytes()).hexdigest()[:16]
    return cache_root() / f"{runtime}-{digest}"


def built(code_dir: Path, runtime: str) -> Path | None:
    """The finished build of ``code_dir``'s requirements, or None (none needed, or not built yet)."""
    target = build_dir(code_dir, runtime)
    return target if target is not None and (target / _STAMP).is_file() else None


def build(code_dir: Path, runtime: str, *, progress: Callable[[str], None] | None = None) -> Path | None:
    """Install ``code_dir``'s requirements for ``runtime`` unless a current build exists; BuildFailed with pip's
    message when pip fails. Builds of one file are serialised across processes by a lock file, and made in a
    temporary folder renamed into place, so a half-made build is never used."""
    target = build_dir(code_dir, runtime)
    if target is None:
        return None
    python = python_runtime.executable(runtime)
    target.parent.mkdir(parents=True, exist_ok=True)
    with open(target.parent / f".{target.name}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if (target / _STAMP).is_file():
            return target
        if progress is not None:
            progress(f"building {code_dir / REQUIREMENTS} for {runtime} into {target}")
        work = Path(tempfile.mkdtemp(prefix=f".{target.name}-", dir=target.parent))
        try:
            done = subprocess.run(
                [python, "-m", "pip", "install", "--quiet", "--disable-pip-version-check", "--no-input",
                 "--target", str(work), "-r", str(code_dir / REQUIREMENTS)],
                capture_output=True, text=True, cwd=code_dir,
            )
            if done.returncode != 0:
                raise BuildFailed(
                    f"pip could not install {code_dir / REQUIREMENTS} for {runtime} (exit {done.returncode}):\n"
                    + _without_noise(done.stderr or done.stdout)
                )
            (work / _STAMP).write_text(str(code_dir / REQUIREMENTS) + "\n")
            work.rename(target)
        finally:
            shutil.rmtree(work, ignore_errors=True)
    return target


def _without_noise(output: str) -> str:
    """pip's message without the index-location warnings some pip configurations print before it."""
    lines = [line for line in output.strip().splitlines() if not line.startswith("WARNING: Location ")]
    return "\n".join(lines)

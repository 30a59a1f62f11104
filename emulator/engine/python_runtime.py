"""The Python runtimes' own environments: one virtualenv per interpreter version holding awslambdaric and the
boto3/botocore that Lambda's python3.x runtimes ship (``emulator/python/requirements.txt``), and nothing of the
emulator's own packages, so that a dependency a function forgot fails with ``Runtime.ImportModuleError`` here too.

Interpreters are found where people keep them: ``--python-executable python3.12=/path``, the emulator's own base
interpreter, pyenv's and uv's version folders, then ``python3.X`` on PATH. Each candidate is run once to read its
version, so a pyenv shim that answers "command not found" is never taken for an interpreter.

The virtualenvs live under ``$LAMBDA_FREEZE_RUNTIME_DIR``, else ``$XDG_CACHE_HOME/lambda-freeze/python-runtimes``,
else ``~/.cache/lambda-freeze/python-runtimes``, in ``<runtime>-<sha256 of the requirements>``: built once (by
``lambda-freeze install-runtime``, or on first use), then reused.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Callable, Iterator
from functools import cache
from pathlib import Path

from ..errors import ConfigError

INSTALL_COMMAND = "lambda-freeze install-runtime"
CACHE_DIR_VARIABLE = "LAMBDA_FREEZE_RUNTIME_DIR"
REQUIREMENTS = Path(__file__).parents[1] / "python" / "requirements.txt"
_STAMP = ".lambda-freeze-runtime.json"
_VERSION_CODE = "import sys; print('%d.%d' % sys.version_info[:2])"
_CLIENT_CHECK = "import awslambdaric.bootstrap"  # boto3 alone would add 0.2 s to every serve
# Interpreters named on the command line (--python-executable python3.12=/path), by version ("3.12").
_explicit: dict[str, str] = {}


def set_interpreter(runtime: str, path: str) -> None:
    """Use ``path`` as the interpreter of ``runtime`` (``python3.12``), wherever it is."""
    _explicit[version_of(runtime)] = path


def version_of(runtime: str) -> str:
    if not re.fullmatch(r"python3\.\d+", runtime):
        raise ConfigError(f"{runtime!r} is not a Python runtime (python3.9 ... python3.14)")
    return runtime.removeprefix("python")


def requirements_hash() -> str:
    return hashlib.sha256(REQUIREMENTS.read_bytes()).hexdigest()[:16]


def cache_root() -> Path:
    if configured := os.environ.get(CACHE_DIR_VARIABLE):
        return Path(configured)
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "lambda-freeze" / "python-runtimes"


def venv_dir(runtime: str) -> Path:
    return cache_root() / f"{runtime}-{requirements_hash()}"


def venv_python(runtime: str) -> Path:
    return venv_dir(runtime) / "bin" / "python"


def installed(runtime: str) -> bool:
    return (venv_dir(runtime) / _STAMP).is_file() and venv_python(runtime).exists()


@cache
def _reported_version(path: str) -> str | None:
    """The ``X.Y`` an executable reports when run as Python, or None when it is no working interpreter."""
    try:
        done = subprocess.run([path, "-c", _VERSION_CODE], capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.SubprocessError):
        return None
    return done.stdout.strip() if done.returncode == 0 else None


def _pyenv_roots() -> list[Path]:
    roots = [Path(os.environ["PYENV_ROOT"])] if os.environ.get("PYENV_ROOT") else []
    return [*roots, Path.home() / ".pyenv"]


def _uv_roots() -> list[Path]:
    roots = [Path(os.environ["UV_PYTHON_INSTALL_DIR"])] if os.environ.get("UV_PYTHON_INSTALL_DIR") else []
    data = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return [*roots, Path(data) / "uv" / "python"]


def _patch_key(folder: Path) -> tuple[int, ...]:
    return tuple(int(n) for n in re.findall(r"\d+", folder.name)[:3])


def candidates(version: str) -> Iterator[str]:
    """Where an interpreter of ``version`` ("3.12") may be, in the order they are tried."""
    if version in _explicit:
        yield _explicit[version]
    if f"{sys.version_info.major}.{sys.version_info.minor}" == version:
        yield getattr(sys, "_base_executable", sys.executable)
    for root in _pyenv_roots():  # ~/.pyenv/versions/3.12.1/bin/python3.12, the newest patch first
        found = [d for d in (root / "versions").glob(f"{version}.*") if re.fullmatch(r"\d+\.\d+\.\d+", d.name)]
        for folder in sorted(found, key=_patch_key, reverse=True):
            yield str(folder / "bin" / f"python{version}")
    for root in _uv_roots():  # ~/.local/share/uv/python/cpython-3.12.8-linux-x86_64-gnu/bin/python3.12
        found = [d for d in root.glob(f"cpython-{version}.*") if "freethreaded" not in d.name]
        for folder in sorted(found, key=_patch_key, reverse=True):
            yield str(folder / "bin" / f"python{version}")
    on_path = shutil.which(f"python{version}")
    if on_path is not None:
        yield on_path


def find_interpreter(runtime: str) -> str:
    """A working interpreter for ``runtime``; ConfigError naming where it looked and how to install one."""
    version = version_of(runtime)
    for path in candidates(version):
        if os.path.exists(path) and _reported_version(path) == version:
            return path
    looked = [f"pyenv ({', '.join(str(r / 'versions') for r in _pyenv_roots())})",
              f"uv ({', '.join(str(r) for r in _uv_roots())})", f"python{version} on PATH"]
    raise ConfigError(
        f"runtime {runtime} needs a Python {version} interpreter, and none was found (looked in: {'; '.join(looked)}): "
        f"install one (`pyenv install {version}` or `uv python install {version}`), or name it with "
        f"--python-executable {runtime}=/path/to/python{version}"
    )


_CLIENT_CHECKED = ".lambda-freeze-client-checked"  # the files a passed check ran on, so later starts skip it


def _client_files(python: str) -> str | None:
    """What the check depends on, as the kernel describes it: the interpreter the virtualenv points at, its
    site-packages and the runtime client's package (a removed or reinstalled file changes one of them)."""
    venv = Path(python).parent.parent
    try:
        site = next(venv.glob("lib/python*/site-packages"))
        stats = [os.stat(os.path.realpath(python)), site.stat(), (site / "awslambdaric").stat()]
    except (OSError, StopIteration):
        return None
    return " ".join(f"{st.st_dev}:{st.st_ino}:{st.st_size}:{st.st_mtime_ns}" for st in stats)


@cache
def _client_problem(python: str) -> str | None:
    """Why the runtime's virtualenv cannot run the runtime client (its interpreter gone, a broken install), or None.

    Running the check costs an interpreter start and the client's import (60 ms here, most of serve's start): once
    passed, it is run again only when the files it ran on have changed."""
    files = _client_files(python)
    marker = Path(python).parent.parent / _CLIENT_CHECKED
    try:
        if files is not None and marker.read_text() == files:
            return None
    except OSError:
        pass
    try:
        done = subprocess.run([python, "-c", _CLIENT_CHECK], capture_output=True, text=True, timeout=60)
    except (OSError, subprocess.SubprocessError) as exc:
        return str(exc)
    if done.returncode != 0:
        return (done.stderr.strip().splitlines() or ["failed"])[-1]
    if files is not None:
        try:
            marker.write_text(files)
        except OSError:
            pass  # a read-only cache: checked at every start, as before
    return None


def executable(runtime: str) -> str:
    """The interpreter that runs ``runtime``'s functions: its virtualenv's, once installed and able to run the
    runtime client; ConfigError with the command that installs it otherwise."""
    python = venv_python(runtime)
    if not installed(runtime):
        raise ConfigError(
            f"runtime {runtime} is not installed: run `{INSTALL_COMMAND} {runtime}` (a virtualenv with awslambdaric "
            f"and boto3, built into {venv_dir(runtime)})"
        )
    problem = _client_problem(str(python))
    if problem is not None:
        raise ConfigError(
            f"runtime {runtime} in {venv_dir(runtime)} cannot run the runtime client ({problem}): rebuild it with "
            f"`{INSTALL_COMMAND} --force {runtime}`"
        )
    return str(python)


def install(runtime: str, *, force: bool = False, progress: Callable[[str], None] | None = None) -> Path:
    """Build ``runtime``'s virtualenv into the cache (unless a current one is there) and return its interpreter.

    A lock file serialises builds across processes (parallel test workers); the build happens in a temporary
    folder beside the target and is renamed into place, so a half-built environment is never used."""
    target = venv_dir(runtime)
    target.parent.mkdir(parents=True, exist_ok=True)
    with open(target.parent / f".{runtime}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if installed(runtime) and not force:
            return venv_python(runtime)
        interpreter = find_interpreter(runtime)
        if progress is not None:
            progress(f"installing runtime {runtime} (awslambdaric, boto3) with {interpreter} into {target}")
        build = Path(tempfile.mkdtemp(prefix=f".{runtime}-", dir=target.parent))
        try:
            _run([interpreter, "-m", "venv", str(build)], f"creating the {runtime} virtualenv")
            _run([str(build / "bin" / "python"), "-m", "pip", "install", "--quiet", "--disable-pip-version-check",
                  "--no-input", "-r", str(REQUIREMENTS)], f"installing {REQUIREMENTS.name} for {runtime}")
            (build / _STAMP).write_text(json.dumps({"interpreter": interpreter, "requirements": requirements_hash()}))
            if target.exists():
                shutil.rmtree(target)
            build.rename(target)
        finally:
            shutil.rmtree(build, ignore_errors=True)
        _client_problem.cache_clear()
    return venv_python(runtime)


def _run(argv: list[str], what: str) -> None:
    done = subprocess.run(argv, capture_output=True, text=True)
    if done.returncode != 0:
        raise ConfigError(f"{what} failed (exit {done.returncode}):\n{(done.stderr or done.stdout).strip()}")

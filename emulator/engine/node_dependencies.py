"""A Node.js function's dependencies as ``sam build`` makes them: the ``dependencies`` of its ``package.json``
installed by npm (``npm ci`` from ``package-lock.json``; ``npm install`` without one), without devDependencies, into a
build cached under ``<build root>/<runtime>-<sha256 of package.json and its lock>/node_modules``.

A code directory that has its own ``node_modules`` is run as it is (the user installed it). The build is found
through ``NODE_PATH``, which serves ``require()``; ES modules (``import``) resolve only from ``node_modules`` folders
beside the code, so an ``.mjs`` function that imports packages needs ``npm ci`` in its directory.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import shutil
import subprocess
import tempfile
from collections.abc import Callable
from pathlib import Path

from .dependencies import BuildFailed, cache_root

_STAMP = ".lambda-freeze-build"
_LOCK = "package-lock.json"


def _dependencies(code_dir: Path) -> dict[str, str]:
    package = code_dir / "package.json"
    if not package.is_file():
        return {}
    try:
        found = json.loads(package.read_text()).get("dependencies") or {}
    except (OSError, ValueError) as exc:
        raise BuildFailed(f"cannot read {package}: {exc}") from None
    return found if isinstance(found, dict) else {}


def build_dir(code_dir: Path, runtime: str) -> Path | None:
    """Where the build of ``code_dir``'s dependencies for ``runtime`` goes (None: nothing to build)."""
    if (code_dir / "node_modules").is_dir() or not _dependencies(code_dir):
        return None
    digest = hashlib.sha256((code_dir / "package.json").read_bytes())
    if (code_dir / _LOCK).is_file():
        digest.update((code_dir / _LOCK).read_bytes())
    return cache_root() / f"{runtime}-{digest.hexdigest()[:16]}"


def built(code_dir: Path, runtime: str) -> Path | None:
    """The ``node_modules`` of the finished build, or None (none needed, or not built yet)."""
    target = build_dir(code_dir, runtime)
    return target / "node_modules" if target is not None and (target / _STAMP).is_file() else None


def build(code_dir: Path, runtime: str, *, progress: Callable[[str], None] | None = None) -> Path | None:
    """npm ci (or npm install) of ``code_dir``'s dependencies unless a current build exists; BuildFailed with npm's
    message when npm fails. Serialised across processes by a lock file; made in a temporary folder renamed into
    place, so a half-made build is never used."""
    target = build_dir(code_dir, runtime)
    if target is None:
        return None
    npm = shutil.which("npm")
    if npm is None:
        raise BuildFailed(f"{code_dir / 'package.json'} has dependencies, and npm is not on PATH to install them")
    target.parent.mkdir(parents=True, exist_ok=True)
    with open(target.parent / f".{target.name}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if (target / _STAMP).is_file():
            return target / "node_modules"
        locked = (code_dir / _LOCK).is_file()
        if progress is not None:
            progress(f"building {code_dir / 'package.json'} for {runtime} into {target} "
                     f"({'npm ci' if locked else 'npm install: no package-lock.json'})")
        work = Path(tempfile.mkdtemp(prefix=f".{target.name}-", dir=target.parent))
        try:
            shutil.copy2(code_dir / "package.json", work / "package.json")
            if locked:
                shutil.copy2(code_dir / _LOCK, work / _LOCK)
            verb = ["ci"] if locked else ["install", "--no-package-lock"]
            done = subprocess.run([npm, *verb, "--omit=dev", "--no-audit", "--no-fund", "--loglevel=error"],
                                  cwd=work, capture_output=True, text=True)
            if done.returncode != 0:
                raise BuildFailed(f"npm could not install {code_dir / 'package.json'} for {runtime} "
                                  f"(exit {done.returncode}):\n{(done.stderr or done.stdout).strip()}")
            (work / _STAMP).write_text(str(code_dir / "package.json") + "\n")
            work.rename(target)
        finally:
            shutil.rmtree(work, ignore_errors=True)
    return target / "node_modules"

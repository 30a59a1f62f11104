"""The small C programs the engine builds for itself (the virtual clock's preload, the parking step of a runtime
process): each compiled once per source version with the system's C compiler, into the user's cache."""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import tempfile
from pathlib import Path

from ..errors import LambdaFreezeError


def cache_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "lambda-freeze"


def build(source: Path, suffix: str, flags: list[str], libraries: list[str], what: str) -> Path:
    """``source`` compiled with ``flags`` (``-shared -fPIC`` for a library) into ``<stem>-<hash><suffix>``, unless
    already built; raises LambdaFreezeError naming ``what`` and what to install when it cannot be built."""
    code = source.read_bytes()
    target = cache_dir() / f"{source.stem}-{hashlib.sha256(code).hexdigest()[:16]}{suffix}"
    if target.is_file():
        return target
    compiler = shutil.which(os.environ.get("CC", "cc"))
    if compiler is None:
        raise LambdaFreezeError(
            f"{what} needs a C compiler: install one (Debian, Ubuntu: apt-get install gcc) or name it in CC"
        )
    target.parent.mkdir(parents=True, exist_ok=True)
    # Built beside and renamed over: test workers building at once each see a whole file or none.
    fd, partial = tempfile.mkstemp(dir=target.parent, prefix=target.stem, suffix=".part")
    os.close(fd)
    command = [compiler, "-O2", "-Wall", *flags, "-o", partial, str(source), *libraries]
    built = subprocess.run(command, capture_output=True, text=True, check=False)
    if built.returncode != 0:
        os.unlink(partial)
        raise LambdaFreezeError(f"building {what} failed: {built.stderr.strip()[-500:]}")
    os.chmod(partial, 0o755)
    os.replace(partial, target)
    return target

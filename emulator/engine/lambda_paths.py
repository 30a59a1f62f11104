"""Lambda's paths for a runtime: its code at ``/var/task`` and its layers at ``/opt``, in a private mount namespace
of its own where the kernel allows one (root, or CAP_SYS_ADMIN); elsewhere the real directories, under the same
variables.

The runtime's child process, between fork and exec, leaves the emulator's mount namespace (``unshare``), makes every
mount private (so nothing it mounts reaches the host) and mounts the code directory on ``/var/task`` (a bind mount)
and the layers on ``/opt``: one layer by a bind mount, several as a read-only overlay (the later layer's file wins,
as when Lambda extracts them in order), none as an empty read-only tmpfs (the host's ``/opt`` is not Lambda's). The
real directories are untouched and still visible at their own paths: hot reload watches those.
"""

from __future__ import annotations

import ctypes
import functools
import logging
import os
import subprocess
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

log = logging.getLogger("lambda_freeze.prepare")  # shown at the default level, once

TASK_ROOT = "/var/task"
OPT = "/opt"
_CLONE_NEWNS = 0x00020000
_MS_RDONLY = 1
_MS_BIND = 4096
_MS_REC = 16384
_MS_PRIVATE = 1 << 18
_PATH_VARIABLES = ("LAMBDA_TASK_ROOT", "PYTHONPATH", "NODE_PATH", "PATH", "LD_LIBRARY_PATH")

_libc = ctypes.CDLL(None, use_errno=True)
_libc.mount.argtypes = [ctypes.c_char_p, ctypes.c_char_p, ctypes.c_char_p, ctypes.c_ulong, ctypes.c_char_p]


def _check(result: int, what: str) -> None:
    if result != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"{what}: {os.strerror(err)}")


@dataclass(frozen=True)
class Mounts:
    """One function's view: its code directory on ``/var/task``, its layers (in extraction order) on ``/opt``."""

    code_dir: Path
    layers: tuple[Path, ...] = ()

    def child_setup(self) -> None:
        """In the child, before exec: a private mount namespace with Lambda's paths, the working directory
        ``/var/task``. Plain syscalls only (it runs between fork and exec)."""
        _check(_libc.unshare(_CLONE_NEWNS), "unshare(CLONE_NEWNS)")
        _check(_libc.mount(None, b"/", None, _MS_REC | _MS_PRIVATE, None), "mount --make-rprivate /")
        if not self.layers:
            _check(_libc.mount(b"tmpfs", OPT.encode(), b"tmpfs", _MS_RDONLY, b"size=0"), "mount tmpfs /opt")
        elif len(self.layers) == 1:
            _check(_libc.mount(os.fsencode(self.layers[0]), OPT.encode(), None, _MS_BIND | _MS_REC, None),
                   "bind the layer on /opt")
        else:  # the leftmost lower directory is the top one: the last layer extracted
            lower = b":".join(os.fsencode(layer) for layer in reversed(self.layers))
            _check(_libc.mount(b"overlay", OPT.encode(), b"overlay", _MS_RDONLY, b"lowerdir=" + lower),
                   "overlay the layers on /opt")
        _check(_libc.mount(os.fsencode(self.code_dir), TASK_ROOT.encode(), None, _MS_BIND | _MS_REC, None),
               "bind the code on /var/task")
        os.chdir(TASK_ROOT)

    def environment(self, env: Mapping[str, str]) -> dict[str, str]:
        """``env`` with the code directory's and the layers' real paths as the runtime sees them: ``/var/task/...``
        and ``/opt/...`` (several layers' entries become one, as in Lambda's merged ``/opt``)."""
        prefixes = [(str(self.code_dir), TASK_ROOT), *((str(layer), OPT) for layer in self.layers)]

        def seen(entry: str) -> str:
            for real, mounted in prefixes:
                if entry == real or entry.startswith(real + "/"):
                    return mounted + entry[len(real):]
            return entry

        result = dict(env)
        for key in _PATH_VARIABLES:
            if key in result:
                result[key] = ":".join(dict.fromkeys(seen(entry) for entry in result[key].split(":")))
        return result


def for_function(code_dir: Path, layers: Sequence[Path]) -> Mounts | None:
    """The function's mounts where the kernel allows a private mount namespace with them; else None."""
    return Mounts(code_dir, tuple(layers)) if available() else None


@functools.cache
def available() -> bool:
    """Whether a child can have Lambda's paths: tried once, on a throwaway process, with every kind of mount used
    (bind, overlay, tmpfs). Where it cannot, one log line says so."""
    try:
        os.makedirs(TASK_ROOT, exist_ok=True)  # a mount point, empty on the host
        with tempfile.TemporaryDirectory(prefix="lambda-freeze-mounts-") as tmp:
            parts = [Path(tmp, name) for name in ("code", "a", "b")]
            for part in parts:
                part.mkdir()

            def probe() -> None:  # one process (a serve's start waits for it): the mounts stack on /opt
                Mounts(parts[0], (parts[1], parts[2])).child_setup()
                _check(_libc.mount(os.fsencode(parts[1]), OPT.encode(), None, _MS_BIND | _MS_REC, None), "bind")
                _check(_libc.mount(b"tmpfs", OPT.encode(), b"tmpfs", _MS_RDONLY, b"size=0"), "tmpfs")

            subprocess.run(["true"], preexec_fn=probe, check=True, stdin=subprocess.DEVNULL,
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    except (OSError, subprocess.SubprocessError) as exc:
        log.warning("no private mount namespace here (%s): functions see their code and layers at their real "
                    "paths, not at /var/task and /opt (LAMBDA_TASK_ROOT and the search paths say where)", exc)
        return False
    log.info("functions see their code at /var/task and their layers at /opt (a private mount namespace each)")
    return True

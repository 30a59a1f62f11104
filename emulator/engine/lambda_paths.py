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
import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from ..config.settings import FunctionConfig

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
        # The code first: it may live under the host's /opt (the container image's /opt/lambda-freeze), which the
        # layers are about to cover.
        _check(_libc.mount(os.fsencode(self.code_dir), TASK_ROOT.encode(), None, _MS_BIND | _MS_REC, None),
               "bind the code on /var/task")
        if not self.layers:
            _check(_libc.mount(b"tmpfs", OPT.encode(), b"tmpfs", _MS_RDONLY, b"size=0"), "mount tmpfs /opt")
        elif len(self.layers) == 1:
            _check(_libc.mount(os.fsencode(self.layers[0]), OPT.encode(), None, _MS_BIND | _MS_REC, None),
                   "bind the layer on /opt")
        else:  # the leftmost lower directory is the top one: the last layer extracted
            lower = b":".join(os.fsencode(layer) for layer in reversed(self.layers))
            _check(_libc.mount(b"overlay", OPT.encode(), b"overlay", _MS_RDONLY, b"lowerdir=" + lower),
                   "overlay the layers on /opt")
        os.chdir(TASK_ROOT)

    def helper_arguments(self) -> list[str]:
        """The same mounts as ``park.c``'s arguments (``process.park``): the code, then the layers in order."""
        return ["-m", str(self.code_dir), *(arg for layer in self.layers for arg in ("-l", str(layer)))]

    def hidden(self, argv: Sequence[str], env: Mapping[str, str]) -> list[str]:
        """What the runtime needs from the host's ``/opt``, which the layers would cover: its program (symbolic links
        followed) or a module search path (``PYTHONPATH``, ``NODE_PATH``) under ``/opt`` that is neither the code
        nor a layer; ``env`` names the real paths."""
        own = [str(self.code_dir), *map(str, self.layers)]

        def under(path: str, root: str) -> bool:
            return path == root or path.startswith(root.rstrip("/") + "/")

        needed = [os.path.realpath(arg) for arg in argv if os.path.isabs(arg)]
        needed += [entry for key in ("PYTHONPATH", "NODE_PATH") for entry in env.get(key, "").split(":") if entry]
        return [path for path in dict.fromkeys(needed)
                if under(path, OPT) and not any(under(path, root) for root in own)]

    def environment(self, env: Mapping[str, str]) -> dict[str, str]:
        """``env`` with the code directory's and the layers' real paths as the runtime sees them: ``/var/task/...``
        and ``/opt/...`` (several layers' entries become one, as in Lambda's merged ``/opt``)."""
        result = dict(env)
        for key in _PATH_VARIABLES:
            if key in result:
                result[key] = ":".join(dict.fromkeys(self.seen(entry) for entry in result[key].split(":")))
        return result

    def command(self, argv: Sequence[str]) -> list[str]:
        """``argv`` with a path into the code or a layer as the runtime sees it (a ``bootstrap``, the function's own
        runtime client), since the real one may lie under the host's ``/opt``."""
        return [self.seen(arg) for arg in argv]

    def real(self, path: str) -> str:
        """A path as the runtime sees it (``/var/task/...``, ``/opt/...``) where it is on the host: the code
        directory's, or the last layer holding it (the one on top of ``/opt``); any other path as it is."""
        for mounted, candidates in ((TASK_ROOT, [self.code_dir]), (OPT, list(reversed(self.layers)))):
            if path == mounted or path.startswith(mounted + "/"):
                found = [str(c) + path[len(mounted):] for c in candidates]
                return next((f for f in found if os.path.lexists(f)), found[0] if found else path)
        return path

    def seen(self, path: str) -> str:
        """A real path into the code directory or a layer, as the runtime sees it; any other path as it is."""
        for real, mounted in [(str(self.code_dir), TASK_ROOT), *((str(layer), OPT) for layer in self.layers)]:
            if path == real or path.startswith(real + "/"):
                return mounted + path[len(real):]
        return path


def wanted(config: FunctionConfig) -> bool:
    """Whether ``config`` asks for Lambda's paths: the default, unless turned off (``lambda_paths = false``) or the
    function is debugged, whose debugger must see the files the editor has open (their breakpoints name them)."""
    return config.lambda_paths and config.debug_port is None


def for_function(config: FunctionConfig, argv: Sequence[str], env: Mapping[str, str]) -> Mounts | None:
    """The function's mounts when it wants Lambda's paths, the kernel allows a private mount namespace and its
    runtime (``argv``, ``env``) needs nothing of the host's ``/opt``; else None (the real directories)."""
    if not (wanted(config) and available()):
        return None
    mounts = Mounts(config.code_dir, tuple(config.layers))
    hidden = mounts.hidden(argv, env)
    if hidden:
        _say_hidden(config.name, tuple(hidden))
        return None
    return mounts


@functools.cache
def _say_hidden(function: str, hidden: tuple[str, ...]) -> None:  # once per function, not per environment
    log.warning("function %s runs at its real paths, not /var/task and /opt: its runtime needs %s, which /opt "
                "would hide (keep the interpreter, the runtime client and the build cache out of /opt for Lambda's "
                "paths)", function, ", ".join(hidden))


_probing = threading.Lock()


def available() -> bool:
    """Whether a child can have Lambda's paths: tried once, on a throwaway process, with every kind of mount used
    (bind, overlay, tmpfs). Where it cannot, one log line says so, with the kernel's reason. Threads that ask while
    the probe runs (a standby being made, a first environment's preparation) wait for its answer."""
    with _probing:
        return _available()


@functools.cache
def _available() -> bool:
    try:
        os.makedirs(TASK_ROOT, exist_ok=True)  # a mount point, empty on the host
        with tempfile.TemporaryDirectory(prefix="lambda-freeze-mounts-") as tmp:
            parts = [Path(tmp, name) for name in ("code", "a", "b")]
            for part in parts:
                part.mkdir()
            _probe(parts)
    except (OSError, subprocess.SubprocessError) as exc:
        log.warning("no private mount namespace here (%s): functions see their code and layers at their real "
                    "paths, not at /var/task and /opt (LAMBDA_TASK_ROOT and the search paths say where)", exc)
        return False
    log.info("functions see their code at /var/task and their layers at /opt (a private mount namespace each)")
    return True


def _probe(parts: list[Path]) -> None:
    """The mounts in one throwaway process (a serve's start waits for it), stacked on /opt. Raises OSError with the
    failing step and the kernel's reason, which the child writes to a pipe (subprocess would only say that its
    preexec_fn failed)."""
    read_fd, write_fd = os.pipe()

    def probe() -> None:
        try:
            Mounts(parts[0], (parts[1], parts[2])).child_setup()
            _check(_libc.mount(os.fsencode(parts[1]), OPT.encode(), None, _MS_BIND | _MS_REC, None), "bind")
            _check(_libc.mount(b"tmpfs", OPT.encode(), b"tmpfs", _MS_RDONLY, b"size=0"), "tmpfs")
        except OSError as exc:
            os.write(write_fd, str(exc.strerror).encode())
            raise

    try:
        try:
            subprocess.run(["true"], preexec_fn=probe, check=True, stdin=subprocess.DEVNULL,
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        finally:
            os.close(write_fd)
    except subprocess.SubprocessError as exc:
        reason = os.read(read_fd, 4096).decode(errors="replace")
        raise OSError(reason or str(exc)) from None
    finally:
        os.close(read_fd)

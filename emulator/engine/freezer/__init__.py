"""Freezer backends: stop every thread of an environment's runtime between invocations, and kill it as a whole.

``cgroup2`` (``cgroup.freeze``), ``cgroup1`` (``freezer.state``), ``sigstop`` (SIGSTOP/SIGCONT of the process
group) and ``none`` sit behind one small interface, chosen by name through ``BACKENDS``; ``auto`` takes the first
of cgroup2 → cgroup1 → sigstop that works on this machine.

Each emulator instance keeps its cgroups under ``<hierarchy>/<own cgroup>/lambda-freeze/i<pid>.<start-time>/``;
directories of instances whose process is gone are thawed, emptied and removed by ``cleanup_stale``.

The interface is in ``base``, the cgroup backends in ``cgroup``, the signal ones in ``signals``, and an emulator
instance's directory, with its watchdog, in ``instances``; this module chooses among the backends. Every name
stays importable from here.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from ...errors import ConfigError, FreezerUnavailable
from ..cgroupfs import _kill, _read_pids, _rmdir_when_empty, _write, destroy_instance
from .base import FreezerBackend, FreezerGroup
from .cgroup import (
    Cgroup1Backend,
    Cgroup1Group,
    Cgroup2Backend,
    Cgroup2Group,
    CgroupBackend,
    CgroupGroup,
    _mountinfo,
    _own_cgroup,
    cleanup_stale,
    rmdir_when_empty,
)
from .instances import (
    ROOT_NAME,
    _instance_alive,
    instance_name,
    make_instance,
    process_start_time,
    watch,
)
from .signals import NoFreezeBackend, NoFreezeGroup, SigstopBackend, SigstopGroup, _killpg

__all__ = [
    "AUTO_ORDER",
    "BACKENDS",
    "CHOICES",
    "ROOT_NAME",
    "Cgroup1Backend",
    "Cgroup1Group",
    "Cgroup2Backend",
    "Cgroup2Group",
    "CgroupBackend",
    "CgroupGroup",
    "FreezerBackend",
    "FreezerGroup",
    "NoFreezeBackend",
    "NoFreezeGroup",
    "SigstopBackend",
    "SigstopGroup",
    "_instance_alive",
    "_kill",
    "_killpg",
    "_mountinfo",
    "_own_cgroup",
    "_read_pids",
    "_rmdir_when_empty",
    "_write",
    "cleanup_stale",
    "create_freezer",
    "destroy_instance",
    "instance_name",
    "make_instance",
    "process_start_time",
    "rmdir_when_empty",
    "watch",
]

log = logging.getLogger("lambda_freeze.freezer")


BACKENDS: dict[str, Callable[[], FreezerBackend]] = {
    "cgroup2": Cgroup2Backend.discover,
    "cgroup1": Cgroup1Backend.discover,
    "sigstop": SigstopBackend.discover,
    "none": NoFreezeBackend.discover,
}
AUTO_ORDER = ("cgroup2", "cgroup1", "sigstop")
CHOICES = ("auto", *BACKENDS)


def create_freezer(name: str = "auto") -> FreezerBackend:
    """The backend called ``name``; ``auto`` logs which one it chose and why the ones before it could not work."""
    if name == "auto":
        reasons = []
        for candidate in AUTO_ORDER:
            try:
                backend = BACKENDS[candidate]()
            except FreezerUnavailable as exc:
                reasons.append(exc.message)
                continue
            log.info("freezer: %s (auto)%s", backend.name, "".join(f"; {r}" for r in reasons))
            return backend
        raise FreezerUnavailable("no freezer backend works here: " + "; ".join(reasons))
    if name not in BACKENDS:
        raise ConfigError(f"unknown freezer {name!r}: choose one of {', '.join(CHOICES)}")
    backend = BACKENDS[name]()
    log.info("freezer: %s", backend.name)
    return backend

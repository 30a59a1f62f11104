"""The watchdog: waits for its emulator to go away (EOF on stdin), then destroys what the emulator left.

python -m emulator.watchdog <instance cgroup dir> v1|v2

Each line the emulator writes on stdin while it runs, ``v1|v2 <dir>``, adds an instance directory of another
hierarchy (the memory cgroups of the same emulator): they are destroyed in the order they were named.

The emulator itself starts the same watch (``cgroupfs.watch``) without this package and without ``site``
(``freezer.instances``), which costs a quarter of the CPU.
"""

from __future__ import annotations

import sys

from .engine.cgroupfs import watch

if __name__ == "__main__":
    sys.exit(watch(sys.argv[1:]))

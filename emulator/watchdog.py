"""The watchdog: waits for its emulator to go away (EOF on stdin), then destroys what the emulator left.

python -m emulator.watchdog <instance cgroup dir> v1|v2

The emulator itself starts the same watch (``cgroupfs.watch``) without this package and without ``site``
(``freezer.instances``), which costs a quarter of the CPU.
"""

from __future__ import annotations

import sys

from .engine.cgroupfs import watch

if __name__ == "__main__":
    sys.exit(watch(sys.argv[1:]))

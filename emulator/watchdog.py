"""The watchdog: waits for its emulator to go away (EOF on stdin), then destroys what the emulator left.

python -m emulator.watchdog <instance cgroup dir> v1|v2

Each line the emulator writes on stdin while it runs, ``v1|v2 <dir>``, adds an instance directory of another
hierarchy (the memory cgroups of the same emulator): they are destroyed in the order they were named.
"""

from __future__ import annotations

import signal
import sys
from pathlib import Path

from .engine.cgroupfs import destroy_instance


def main(argv: list[str]) -> int:
    watched = [(Path(argv[0]), argv[1] == "v1")]
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # only the emulator's end ends the watch
    for line in sys.stdin.buffer:
        version, _, directory = line.decode(errors="surrogateescape").rstrip("\n").partition(" ")
        if directory:
            watched.append((Path(directory), version == "v1"))
    for instance, v1 in watched:
        if instance.is_dir():
            destroy_instance(instance, v1)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

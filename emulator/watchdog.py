"""The watchdog: waits for its emulator to go away (EOF on stdin), then destroys what the emulator left.

python -m emulator.watchdog <instance cgroup dir> v1|v2
"""

from __future__ import annotations

import signal
import sys
from pathlib import Path

from .engine.cgroupfs import destroy_instance


def main(argv: list[str]) -> int:
    instance, version = Path(argv[0]), argv[1]
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # only the emulator's end ends the watch
    while sys.stdin.buffer.read(65536):
        pass
    if instance.is_dir():
        destroy_instance(instance, version == "v1")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

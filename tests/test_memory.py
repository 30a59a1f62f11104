"""Max Memory Used's pieces: the process tree of a runtime and the sum of its members' peak RSS."""

from __future__ import annotations

import subprocess
import sys

from emulator.engine.memory import PeakRssReader, process_tree

# A parent with two extra threads that starts a child from one of them and prints the child's pid: the child shows
# in that thread's /proc/<pid>/task/<tid>/children, not in the main thread's.
TREE = """
import signal, subprocess, sys, threading
def spawn():
    child = subprocess.Popen([sys.executable, "-c", "import signal; signal.pause()"])
    print(child.pid, flush=True)
threading.Thread(target=threading.Event().wait, daemon=True).start()
threading.Thread(target=spawn).start()
signal.pause()
"""


def test_process_tree_finds_children_of_every_thread():
    parent = subprocess.Popen([sys.executable, "-c", TREE], stdout=subprocess.PIPE, text=True)
    try:
        child = int(parent.stdout.readline())
        assert sorted(process_tree(parent.pid)) == sorted([parent.pid, child])
        reader = PeakRssReader()
        try:
            assert reader.total_kb([parent.pid, child]) > reader.total_kb([parent.pid]) > 0
        finally:
            reader.close()
    finally:
        subprocess.run(["pkill", "-KILL", "-P", str(parent.pid)], check=False)
        parent.kill()
        parent.wait()
        parent.stdout.close()


def test_process_tree_of_a_gone_process_is_the_pid_alone():
    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    gone.wait()
    assert process_tree(gone.pid) == [gone.pid]

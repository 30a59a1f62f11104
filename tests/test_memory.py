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


# Threads that start and end without pause: between the listing of /proc/<pid>/task and the opening of a thread's
# children file, that thread may be gone.
CHURN = """
import threading
print("churning", flush=True)
while True:
    threads = [threading.Thread(target=lambda: None) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
"""


def test_process_tree_of_a_process_whose_threads_come_and_go():
    churning = subprocess.Popen([sys.executable, "-c", CHURN], stdout=subprocess.PIPE, text=True)
    try:
        assert churning.stdout.readline() == "churning\n"
        # About one walk in a hundred meets a thread that ended since the listing (measured): 20,000 walks meet many.
        for _ in range(20_000):
            assert process_tree(churning.pid) == [churning.pid]
    finally:
        churning.kill()
        churning.wait()
        churning.stdout.close()


def test_process_tree_of_hundreds_of_processes():
    # A function that starts a pool of workers: 300 children, each found once.
    parent = subprocess.Popen(
        ["sh", "-c", "for i in $(seq 300); do sleep 600 & done; echo started; wait"], stdout=subprocess.PIPE, text=True
    )
    try:
        assert parent.stdout.readline() == "started\n"
        tree = process_tree(parent.pid)
        assert len(tree) == len(set(tree)) == 301 and tree[0] == parent.pid
    finally:
        subprocess.run(["pkill", "-KILL", "-P", str(parent.pid)], check=False)
        parent.kill()
        parent.wait()
        parent.stdout.close()

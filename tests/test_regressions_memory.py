"""Max Memory Used is the peak of every process of an environment: a freed peak still shows, a child's, a
grandchild's and an extension's memory count, under every freezer; and a process that ends while it is measured is
skipped."""

from __future__ import annotations

import os
import re
import subprocess
import sys

import pytest

from conftest import FREEZERS
from emulator.engine.memory import PeakRssReader, process_tree

pytestmark = pytest.mark.timeout(90)

HELD_MB = 100
# Room for the function's own use plus what is held: the memory size is enforced where a memory cgroup exists.
MEMORY_MB = 1024


def max_memory_used(log: str) -> int:
    match = re.search(r"^REPORT RequestId: .*\tMax Memory Used: (\d+) MB", log, re.M)
    assert match, log
    return int(match[1])


def test_a_peak_freed_before_the_answer_shows_and_never_goes_down(serve):
    fn = serve("python/memory", memory_mb=MEMORY_MB)
    before = max_memory_used(fn.invoke({"action": "small"}).log)
    peak = max_memory_used(fn.invoke({"action": "peak", "megabytes": HELD_MB}).log)
    assert peak >= before + HELD_MB - 5  # VmHWM, not the resident set left after the free
    after = max_memory_used(fn.invoke({"action": "small"}).log)
    assert after >= peak  # the environment's peak: a later, smaller invocation does not lower it
    (env,) = fn.environments()
    assert env["max_memory_used_mb"] == after


@pytest.mark.parametrize("freezer", FREEZERS)
# grandchild: the runtime's child starts a process of its own, which holds the memory (as a shell script's command does)
@pytest.mark.parametrize("holder", ["child", "grandchild"])
def test_a_child_or_grandchild_process_counts(serve, freezer, holder):
    fn = serve("python/memory", freezer=freezer, memory_mb=MEMORY_MB)
    before = max_memory_used(fn.invoke({"action": "small"}).log)
    result = fn.invoke({"action": holder, "megabytes": HELD_MB})
    assert result.function_error is None, result.payload
    assert max_memory_used(result.log) >= before + HELD_MB - 5


@pytest.mark.parametrize("freezer", FREEZERS)
def test_an_extension_counts(serve, freezer):
    fn = serve("python/memory_extension", freezer=freezer, memory_mb=MEMORY_MB, env={"HOLD_MB": str(HELD_MB)})
    result = fn.invoke({})
    assert result.payload == "ok"
    # The runtime alone (awslambdaric) peaks far below 100 MB: this much is the extension's.
    assert max_memory_used(result.log) >= HELD_MB


# A process that lives until told, then exits: gone between two walks of the same reader.
PAUSED = "import sys; print('ready', flush=True); sys.stdin.read()"


def _paused() -> subprocess.Popen[bytes]:
    """A process done starting (its peak RSS no longer grows), waiting on its stdin."""
    process = subprocess.Popen([sys.executable, "-c", PAUSED], stdin=subprocess.PIPE, stdout=subprocess.PIPE)
    assert process.stdout is not None and process.stdout.readline() == b"ready\n"
    return process


def test_a_process_that_ends_between_two_reads_is_left_out():
    stays = _paused()
    goes = _paused()
    reader = PeakRssReader()
    try:
        alone = reader.total_kb([stays.pid])
        both = reader.total_kb([stays.pid, goes.pid])
        assert both > alone > 0
        goes.communicate(b"")  # ends, and is reaped: its open status file now fails to read
        # Members come in no set order: the one that is gone is listed first, and the others still count.
        assert reader.total_kb([goes.pid, stays.pid]) == reader.total_kb([stays.pid]) >= alone
    finally:
        reader.close()
        stays.communicate(b"")


def test_a_process_gone_before_its_first_read_adds_nothing():
    # Listed as a member (by the cgroup, or the walk of the process tree), then gone before its status is opened.
    stays = _paused()
    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    gone.wait()
    reader = PeakRssReader()
    try:
        assert reader.total_kb([stays.pid, gone.pid]) == reader.total_kb([stays.pid]) > 0
    finally:
        reader.close()
        stays.communicate(b"")


def test_a_zombie_adds_nothing_and_its_tree_is_itself():
    zombie = subprocess.Popen([sys.executable, "-c", "pass"])
    os.waitid(os.P_PID, zombie.pid, os.WEXITED | os.WNOWAIT)  # exited, not reaped: its status has no Vm line
    reader = PeakRssReader()
    try:
        assert reader.total_kb([zombie.pid]) == 0
        assert process_tree(zombie.pid) == [zombie.pid]
    finally:
        reader.close()
        zombie.wait()

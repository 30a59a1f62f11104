"""The runtime's clocks as a handler sees them; a pool reaper on a background thread that closes what has been idle
for 10 minutes (a pool's idle timer, checked from the clock every 10 ms); a timed wait; and a thread's sleep that is
already under way when the environment freezes."""

import threading
import time

IDLE_LIMIT_S = 600.0
last_used_s = time.monotonic()
reaped = threading.Event()


def reaper() -> None:
    while not reaped.is_set():
        if time.monotonic() - last_used_s > IDLE_LIMIT_S:
            reaped.set()
        time.sleep(0.01)  # wait-ok: the background reaper the virtual clock must move


threading.Thread(target=reaper, daemon=True).start()


slept = threading.Event()


def sleeper(seconds: float) -> None:
    time.sleep(seconds)  # wait-ok: a relative sleep already under way when the clock moves (what is tested)
    slept.set()


def in_clock_nanosleep(thread: threading.Thread) -> bool:
    """Whether ``thread`` is blocked in clock_nanosleep (x86_64: 230, aarch64: 115), where time.sleep waits."""
    try:
        with open(f"/proc/self/task/{thread.native_id}/syscall") as f:
            return f.read().split()[0] in ("230", "115")
    except (OSError, IndexError):
        return False


def handler(event, context):
    global last_used_s
    if "start_sleep_s" in event:
        thread = threading.Thread(target=sleeper, args=(event["start_sleep_s"],), daemon=True)
        thread.start()
        # Under way means in the kernel: a sleep that has read the clock but not yet entered clock_nanosleep when
        # the environment freezes takes its deadline on thaw, on the moved clock, as a wait recomputed then does.
        while not in_clock_nanosleep(thread):
            time.sleep(0.001)  # wait-ok: polls the kernel's view of the other thread
    if "await_sleeper_s" in event:
        slept.wait(event["await_sleeper_s"])
    timed_wait_s = event.get("timed_wait_s", 0)
    before_s = time.monotonic()
    threading.Event().wait(timed_wait_s)  # a timed wait on the runtime's clock: an absolute deadline underneath
    waited_s = time.monotonic() - before_s
    result = {
        "waited_s": waited_s,
        "slept": slept.is_set(),
        "wall_s": time.time(),
        "monotonic_s": time.monotonic(),
        "boottime_s": time.clock_gettime(time.CLOCK_BOOTTIME),
        "remaining_ms": context.get_remaining_time_in_millis(),
        # The reaper runs on its own thread: after a long freeze it gets a moment to look at the clock.
        "reaped": reaped.wait(event.get("await_reaper_s", 0)),
    }
    last_used_s = time.monotonic()
    return result

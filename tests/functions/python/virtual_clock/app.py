"""The runtime's clocks as a handler sees them, and a pool reaper on a background thread that closes what has been
idle for 10 minutes (a pool's idle timer, checked from the clock every 10 ms)."""

import threading
import time

IDLE_LIMIT_S = 600.0
last_used_s = time.monotonic()
reaped = threading.Event()


def reaper() -> None:
    while not reaped.is_set():
        if time.monotonic() - last_used_s > IDLE_LIMIT_S:
            reaped.set()
        time.sleep(0.01)


threading.Thread(target=reaper, daemon=True).start()


def handler(event, context):
    global last_used_s
    result = {
        "wall_s": time.time(),
        "monotonic_s": time.monotonic(),
        "boottime_s": time.clock_gettime(time.CLOCK_BOOTTIME),
        "remaining_ms": context.get_remaining_time_in_millis(),
        # The reaper runs on its own thread: after a long freeze it gets a moment to look at the clock.
        "reaped": reaped.wait(event.get("await_reaper_s", 0)),
    }
    last_used_s = time.monotonic()
    return result

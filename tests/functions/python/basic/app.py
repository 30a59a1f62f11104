"""A Python function with one action per behaviour the tests look at."""

import os
import threading
import time

ticks = 0
_ticker = None
timer_log = {}
timer_fired = threading.Event()


def _tick():
    global ticks
    while True:
        ticks += 1
        time.sleep(0.01)  # wait-ok: the background work that freezing must stop


def handler(event, context):
    action = event.get("action", "echo") if isinstance(event, dict) else "echo"
    if action == "echo":
        print(f"echo for {context.aws_request_id}")
        return event
    if action == "context":
        return {
            "aws_request_id": context.aws_request_id,
            "function_name": context.function_name,
            "function_version": context.function_version,
            "invoked_function_arn": context.invoked_function_arn,
            "memory_limit_in_mb": context.memory_limit_in_mb,
            "remaining_ms": context.get_remaining_time_in_millis(),
            "log_group_name": context.log_group_name,
            "log_stream_name": context.log_stream_name,
            "client_context": getattr(context.client_context, "custom", None),
        }
    if action == "env":
        return dict(os.environ)
    if action == "raise":
        raise ValueError(f"bad input: {event.get('detail')}")
    if action == "sleep":
        time.sleep(event["seconds"])  # wait-ok: a handler that outlives its timeout
        return "slept"
    if action == "exit":
        print("exiting now", flush=True)
        os._exit(event.get("status", 3))
    if action == "big":
        return "x" * event["bytes"]
    if action == "pid":
        return os.getpid()
    if action == "ticks":
        global _ticker
        if _ticker is None:
            _ticker = threading.Thread(target=_tick, daemon=True)
            _ticker.start()
        return ticks
    if action == "set_timer":
        set_at = time.time()
        request_id = context.aws_request_id

        def fire():
            timer_log["fired_at"] = time.time()
            timer_log["elapsed_s"] = timer_log["fired_at"] - set_at
            print(f"timer fired for {request_id} after {timer_log['elapsed_s']:.3f} s", flush=True)
            timer_fired.set()

        threading.Timer(event["seconds"], fire).start()
        return {"set_at": set_at}
    if action == "read_timer":
        started = time.time()
        fired_before = "fired_at" in timer_log
        # A thawed timer thread races this handler for the GIL: wait for it to fire (on a loaded host it can take
        # longer than any fixed pause), but not for ever when it never fires.
        timer_fired.wait(event.get("grace_s", 5.0))
        return {"started": started, "fired_before_handler": fired_before, **timer_log}
    if action == "meet":
        # Two invocations that can only both succeed when they run at the same time: each leaves its name in a
        # directory shared by the run (MEET_DIR, else the event's "dir") and waits for the other's.
        where = os.environ.get("MEET_DIR") or event["dir"]
        open(os.path.join(where, event["name"]), "w").close()
        deadline = time.monotonic() + event.get("timeout_s", 20)
        while not os.path.exists(os.path.join(where, event["other"])):
            if time.monotonic() > deadline:
                raise TimeoutError(f"{event['other']} never came: the invocations did not run at the same time")
            time.sleep(0.01)  # wait-ok: polls a file another environment writes
        return {"met": event["other"]}
    raise KeyError(f"unknown action {action}")


def flood(event, context):
    """Writes ``megabytes`` MB to stdout without a single newline, then a last line."""
    import sys

    chunk = "x" * 65536
    for _ in range(event["megabytes"] * 16):
        sys.stdout.write(chunk)
    sys.stdout.write("\nflood done\n")
    return "flooded"


def allocate(event, context):
    """Holds ``megabytes`` MB of memory, touched page by page."""
    held = [bytearray(1024 * 1024) for _ in range(event["megabytes"])]
    return len(held)

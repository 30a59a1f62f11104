import os
import time


def handler(event, context):
    if event.get("crash_extension"):
        pid = int(open(os.environ["EXT_LOG"] + ".pid").read())
        os.kill(pid, 9)
        while os.path.exists(f"/proc/{pid}"):  # until the emulator has reaped it
            time.sleep(0.01)  # wait-ok: the function's own wait
    if event.get("sleep_s"):
        time.sleep(event["sleep_s"])  # wait-ok: a handler that outlives its timeout
    return {"request_id": context.aws_request_id}

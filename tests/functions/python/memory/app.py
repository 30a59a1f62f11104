"""A Python function whose memory use the REPORT's Max Memory Used must follow: a peak that is freed before the
handler returns, and a child process (or a child's child) that holds memory."""

import subprocess
import sys

MB = 1024 * 1024
# A child that writes ``argv[1]`` MB page by page, says so, and keeps it until the environment ends.
HOLDER = "import signal, sys; held = b'1' * (int(sys.argv[1]) << 20); print('held', flush=True); signal.pause()"
# A child that starts the holder and waits for it: the memory is held by the runtime's grandchild.
MIDDLE = "import subprocess, sys; subprocess.run([sys.executable, '-c', sys.argv[1], sys.argv[2]])"
children = []


def handler(event, context):
    action = event.get("action", "small")
    if action == "peak":  # allocated, touched and freed before the answer: only the peak shows it
        held = b"1" * (event["megabytes"] * MB)  # written, so resident (a calloc'd buffer is not, until touched)
        del held
        return "freed"
    if action == "child":
        child = subprocess.Popen([sys.executable, "-c", HOLDER, str(event["megabytes"])], stdout=subprocess.PIPE)
        assert child.stdout.readline() == b"held\n"
        children.append(child)
        return child.pid
    if action == "grandchild":  # the holder's output comes through the child, which shares its stdout
        child = subprocess.Popen(
            [sys.executable, "-c", MIDDLE, HOLDER, str(event["megabytes"])], stdout=subprocess.PIPE
        )
        assert child.stdout.readline() == b"held\n"
        children.append(child)
        return child.pid
    return "small"

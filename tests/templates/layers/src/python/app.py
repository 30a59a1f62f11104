import os
import shutil
import subprocess

import greetlib
import only_in_greet
import sitelib


def handler(event, context):
    tool = shutil.which("layer-tool")
    return {
        "greet": greetlib.greet("layers"),
        "only_in_greet": only_in_greet.WHERE,
        "sitelib": sitelib.WHERE,
        "tool": subprocess.run([tool], capture_output=True, text=True).stdout.strip() if tool else None,
        "LD_LIBRARY_PATH": os.environ.get("LD_LIBRARY_PATH", ""),
    }

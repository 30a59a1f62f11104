import importlib.util
import os
import sys

import boto3


def handler(event, context):
    return {
        "version": "%d.%d" % sys.version_info[:2],
        "executable": sys.executable,
        "path": sys.path,
        "boto3": boto3.__version__,
        "boto3_file": boto3.__file__,
        "python3_on_path": os.environ["PATH"],
        # What the emulator's own virtualenv holds and Lambda's runtime does not.
        "importable": {name: importlib.util.find_spec(name) is not None for name in event.get("modules", [])},
    }

"""Writes a line to $INIT_LOG during INIT (a side effect that happens whether or not it is invoked)."""

import os

with open(os.environ["INIT_LOG"], "a") as log:
    log.write(f"init {os.getpid()}\n")


def handler(event, context):
    return {"pid": os.getpid()}

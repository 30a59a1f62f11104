"""The benchmark's function: as little work as a handler can do."""


def handler(event, context):
    return {"ok": True}


def echo(event, context):
    return event

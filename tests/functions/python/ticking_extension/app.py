"""A Python function beside an extension that counts in a thread of its own (extensions/ticker): a frozen
environment's extension must not count."""


def handler(event, context):
    return "ok"

"""A Python function beside an extension that holds memory (extensions/holder): Max Memory Used counts both."""


def handler(event, context):
    return "ok"

import orjson  # the emulator's own virtualenv has it; Lambda's python runtime does not


def handler(event, context):
    return orjson.dumps(event).decode()

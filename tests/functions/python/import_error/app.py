import nonexistent_module_for_lambda_freeze  # noqa: F401


def handler(event, context):
    return "unreachable"

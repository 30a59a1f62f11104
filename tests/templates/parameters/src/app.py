import os


def handler(event, context):
    """The variables the template set, so a test can see what was merged and resolved."""
    names = ("STAGE", "LOG_LEVEL", "REGION_NAME", "TABLE_NAME", "TABLE_LABEL", "ESCAPED", "FEATURE_ON", "RETRIES")
    return {name: os.environ.get(name) for name in names}

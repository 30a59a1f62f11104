"""Keeps the caller's query parameter in a global: the next caller on the same warm environment gets it back."""

some_global_value = None


def handler(event, context):
    global some_global_value
    if some_global_value is None:
        response = {"statusCode": 200, "body": "coldstart"}
    else:
        response = {"statusCode": 200, "body": f"warmstart, message={some_global_value}"}
    some_global_value = event["queryStringParameters"]["message"]
    return response

import json


def lambda_handler(event, context):
    """An API Gateway proxy response, as the hello-world function of `sam init` returns it."""
    return {
        "statusCode": 200,
        "body": json.dumps({"message": "hello world", "function": context.function_name}),
    }

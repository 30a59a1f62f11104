"""The fix: request data stays in the handler's locals; globals hold only what every caller may share."""

invocations = 0  # shared, but carries nothing of any caller


def handler(event, context):
    global invocations
    invocations += 1
    message = event["queryStringParameters"]["message"]
    return {"statusCode": 200, "body": f"{'coldstart' if invocations == 1 else 'warmstart'}, message={message}"}

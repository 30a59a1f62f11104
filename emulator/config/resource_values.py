"""What ``!Ref`` and ``!GetAtt`` of a template's resource give, for the resources lambda-freeze knows (a function,
an SQS queue, an S3 bucket, a DynamoDB table), as the service would: the names, URLs and ARNs a deployed stack
hands its functions, in the served account and region. Anything else is ``None``: not known locally."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

_FUNCTIONS = ("AWS::Serverless::Function", "AWS::Lambda::Function")
_TABLES = ("AWS::DynamoDB::Table", "AWS::Serverless::SimpleTable")

# The property that names each kind of resource; without it, the resource is named by its logical id (CloudFormation
# would generate a name with the stack's and random parts, which no local run could know in advance).
NAME_PROPERTIES: dict[str, str] = {
    **dict.fromkeys(_FUNCTIONS, "FunctionName"),
    "AWS::SQS::Queue": "QueueName",
    "AWS::S3::Bucket": "BucketName",
    "AWS::DynamoDB::Table": "TableName",
    "AWS::Serverless::SimpleTable": "TableName",
}


def resource_value(
    logical_id: str,
    kind: str,
    properties: Mapping[str, Any],
    attribute: str | None = None,
    *,
    region: str,
    account: str,
    sqs_endpoint: str | None = None,
) -> str | None:
    """``!Ref logical_id`` (``attribute`` None) or ``!GetAtt logical_id.attribute`` of a resource of type ``kind``
    whose name property (``NAME_PROPERTIES``) is already evaluated in ``properties``; None when not known here.
    ``sqs_endpoint``: where the queues are served, for their URLs (else the service's own address)."""
    name = str(properties.get(NAME_PROPERTIES.get(kind, ""), "") or "")
    values: dict[str | None, Callable[[], str]]
    if kind in _FUNCTIONS:
        name = name or logical_id
        values = {None: lambda: name, "Arn": lambda: f"arn:aws:lambda:{region}:{account}:function:{name}"}
    elif kind == "AWS::SQS::Queue":
        name = name or logical_id
        if _true(properties.get("FifoQueue")) and not name.endswith(".fifo"):
            name += ".fifo"  # as CloudFormation names a FIFO queue
        base = (sqs_endpoint or f"https://sqs.{region}.amazonaws.com").rstrip("/")
        url = f"{base}/{account}/{name}"
        values = {None: lambda: url, "QueueUrl": lambda: url, "QueueName": lambda: name,
                  "Arn": lambda: f"arn:aws:sqs:{region}:{account}:{name}"}
    elif kind == "AWS::S3::Bucket":
        name = name or logical_id.lower()  # bucket names are lower case
        values = {None: lambda: name, "Arn": lambda: f"arn:aws:s3:::{name}",
                  "DomainName": lambda: f"{name}.s3.amazonaws.com",
                  "RegionalDomainName": lambda: f"{name}.s3.{region}.amazonaws.com"}
    elif kind in _TABLES:
        name = name or logical_id
        values = {None: lambda: name, "Arn": lambda: f"arn:aws:dynamodb:{region}:{account}:table/{name}"}
    else:
        return None
    make = values.get(attribute)
    return make() if make is not None else None


def _true(value: Any) -> bool:
    return value is True or str(value).lower() == "true"

"""The embedded endpoint's keep-alive HTTP handling (emulator/sources/aws/moto_http.py): one connection serves
request after request, and S3 bodies go through whole (100-continue uploads, multipart, ranges, HEAD, errors)."""

from __future__ import annotations

import asyncio
import http.client
import io
from collections.abc import Iterator
from typing import Any

import pytest
from sqs_support import moto_installed

from conftest import require
from emulator.sources.aws.endpoint import AwsEndpoint

pytestmark = pytest.mark.timeout(60)


@pytest.fixture(scope="module")
def endpoint() -> Iterator[AwsEndpoint]:
    require(moto_installed(), "moto[server] (pip install 'lambda-freeze[aws]') for the embedded SQS endpoint")
    aws = AwsEndpoint(None)
    asyncio.run(aws.start())
    try:
        yield aws
    finally:
        asyncio.run(aws.close())


def test_one_connection_serves_request_after_request(endpoint):
    sqs = endpoint.client("sqs")
    url = sqs.create_queue(QueueName="kept")["QueueUrl"]
    host = endpoint.url.removeprefix("http://")
    connection = http.client.HTTPConnection(host, timeout=10)
    signed = sqs._request_signer  # boto3's own signing, so that moto takes the requests as SQS's
    sockets = set()
    ask = f'{{"QueueUrl": "{url}", "AttributeNames": ["All"]}}'
    for _ in range(3):
        request = _signed_request(signed, endpoint.url, "GetQueueAttributes", ask)
        connection.request("POST", "/", body=request["body"], headers=request["headers"])
        response = connection.getresponse()
        body = response.read()
        assert response.status == 200, body
        assert b'"QueueArn"' in body
        assert response.getheader("Connection") != "close"
        sockets.add(connection.sock)
    assert len(sockets) == 1 and None not in sockets  # one socket, still open after three answers
    connection.close()


def _signed_request(signer: Any, url: str, action: str, body: str) -> dict[str, Any]:
    from botocore.awsrequest import AWSRequest

    request = AWSRequest(
        method="POST",
        url=url + "/",
        data=body.encode(),
        headers={"Content-Type": "application/x-amz-json-1.0", "X-Amz-Target": f"AmazonSQS.{action}"},
    )
    signer.sign(action, request)
    prepared = request.prepare()
    return {"body": prepared.body, "headers": dict(prepared.headers)}


def test_s3_bodies_go_through_whole(endpoint):
    s3 = endpoint.client("s3")
    s3.create_bucket(Bucket="kept-bodies")
    big = bytes(range(256)) * 8192  # 2 MB: boto3 asks for 100-continue
    s3.put_object(Bucket="kept-bodies", Key="big", Body=big)
    s3.upload_fileobj(io.BytesIO(big * 4), "kept-bodies", "multi")  # 8 MB: a multipart upload
    s3.put_object(Bucket="kept-bodies", Key="empty", Body=b"")
    assert s3.get_object(Bucket="kept-bodies", Key="big")["Body"].read() == big
    assert s3.get_object(Bucket="kept-bodies", Key="multi", Range="bytes=10-19")["Body"].read() == big[10:20]
    assert s3.head_object(Bucket="kept-bodies", Key="multi")["ContentLength"] == 4 * len(big)
    assert s3.get_object(Bucket="kept-bodies", Key="empty")["Body"].read() == b""
    with pytest.raises(s3.exceptions.NoSuchKey):
        s3.get_object(Bucket="kept-bodies", Key="missing")
    keys = [o["Key"] for o in s3.list_objects_v2(Bucket="kept-bodies")["Contents"]]
    assert keys == ["big", "empty", "multi"]

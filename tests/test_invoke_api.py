"""The Invoke API as boto3, curl and the custom runtimes see it; the Runtime API's validation."""

from __future__ import annotations

import base64
import json
import re
import shutil
import subprocess
import uuid

import botocore.exceptions
import pytest

from conftest import require

pytestmark = pytest.mark.timeout(60)


def test_unknown_function_is_resource_not_found(serve):
    fn = serve("python/basic")
    with pytest.raises(fn.client.exceptions.ResourceNotFoundException) as raised:
        fn.client.invoke(FunctionName="no-such-function", Payload=b"{}")
    assert "Function not found: arn:aws:lambda:us-east-1:000000000000:function:no-such-function" in str(raised.value)
    with pytest.raises(fn.client.exceptions.ResourceNotFoundException):
        fn.client.invoke(FunctionName="fn", Qualifier="7", Payload=b"{}")


def test_function_names_arns_and_qualifiers(serve):
    fn = serve("python/basic")
    for name in ("fn", "fn:$LATEST", "000000000000:function:fn", "arn:aws:lambda:us-east-1:000000000000:function:fn"):
        assert fn.invoke({"action": "echo", "as": name}, function_name=name, tail=False).payload["as"] == name


def test_payload_too_large(serve):
    fn = serve("python/basic")
    with pytest.raises(fn.client.exceptions.RequestTooLargeException) as raised:
        fn.client.invoke(FunctionName="fn", Payload=json.dumps({"d": "x" * (6 * 1024 * 1024)}).encode())
    assert raised.value.response["ResponseMetadata"]["HTTPStatusCode"] == 413
    assert fn.environments() == []  # nothing was started for it


def test_payload_not_json(serve):
    fn = serve("python/basic")
    with pytest.raises(fn.client.exceptions.InvalidRequestContentException) as raised:
        fn.client.invoke(FunctionName="fn", Payload=b"{not json")
    assert raised.value.response["ResponseMetadata"]["HTTPStatusCode"] == 400
    assert "Could not parse request body into json" in str(raised.value)


def test_any_json_value_is_an_event(serve):
    fn = serve("python/basic")
    assert fn.invoke("just a string", tail=False).payload == "just a string"
    assert fn.invoke([1, 2, 3], tail=False).payload == [1, 2, 3]


def test_dry_run(serve):
    fn = serve("python/basic")
    response = fn.client.invoke(FunctionName="fn", InvocationType="DryRun", Payload=b"{}")
    assert response["StatusCode"] == 204
    assert fn.environments() == []
    with pytest.raises(fn.client.exceptions.ResourceNotFoundException):
        fn.client.invoke(FunctionName="other", InvocationType="DryRun")


def test_invalid_log_type_and_invocation_type(serve):
    fn = serve("python/basic")
    with pytest.raises(botocore.exceptions.ClientError) as raised:
        fn.client.invoke(FunctionName="fn", InvocationType="Sometimes", Payload=b"{}")
    assert raised.value.response["Error"]["Code"] == "InvalidParameterValueException"


def test_curl_and_the_rie_url(serve):
    curl = shutil.which("curl")
    require(curl is not None, "curl is not installed")
    fn = serve("python/basic")
    out = subprocess.run(
        [
            curl,
            "-sS",
            "-i",
            "-XPOST",
            f"{fn.emulator.url}/2015-03-31/functions/function/invocations",
            "-H",
            "X-Amz-Log-Type: Tail",
            "-d",
            '{"action": "echo", "via": "curl"}',
        ],
        capture_output=True,
        check=True,
        text=True,
    ).stdout
    head, _, body = out.partition("\n\n")  # text mode folds CRLF
    assert head.startswith("HTTP/1.1 200")
    assert json.loads(body) == {"action": "echo", "via": "curl"}
    headers = dict(line.split(": ", 1) for line in head.splitlines()[1:])
    assert headers["X-Amz-Executed-Version"] == "$LATEST"
    assert "END RequestId:" in base64.b64decode(headers["X-Amz-Log-Result"]).decode()


def test_log_tail_is_the_last_4kb(serve):
    fn = serve("python/basic")
    result = fn.invoke({"action": "echo", "pad": "y" * 10_000})
    assert len(result.log.encode()) <= 4096
    assert result.log.rstrip("\n").splitlines()[-1].startswith("REPORT RequestId:")


def test_inspection_api(serve):
    fn = serve("python/basic")
    fn.invoke({"action": "echo"})
    out = subprocess.run(
        ["curl", "-sS", f"{fn.emulator.url}/_lambda-freeze/environments"], capture_output=True, check=True
    ).stdout
    (env,) = json.loads(out)
    assert {"id", "function", "pid", "state", "invocations", "freezer"} <= set(env)
    assert env["function"] == "fn" and env["state"] == "frozen" and env["invocations"] == 1


@pytest.mark.parametrize("code", ["provided/shell", "provided/python"])
def test_provided_runtime(serve, code):
    if code.endswith("shell"):
        require(shutil.which("curl") is not None, "curl is not installed")
    fn = serve(code, runtime="provided", handler="my.handler")
    ok = fn.invoke({"hello": "world"})
    assert ok.function_error is None
    assert (ok.payload.get("echo") or ok.payload.get("event")) == {"hello": "world"}
    assert "Init Duration" in ok.log
    failed = fn.invoke({"fail": True})
    assert failed.function_error == "Unhandled"
    assert failed.payload["errorMessage"] == "asked to fail"
    assert fn.invoke({"again": 1}).function_error is None
    assert len(fn.environments()) == 1


def test_provided_runtime_sees_lambda_headers(serve):
    fn = serve("provided/python", runtime="provided", handler="my.handler")
    result = fn.invoke({"x": 1}, ClientContext=base64.b64encode(b'{"custom": {"a": 1}}').decode())
    headers = {k.lower(): v for k, v in result.payload["headers"].items()}
    assert headers["lambda-runtime-invoked-function-arn"].endswith(":function:fn")
    assert headers["lambda-runtime-trace-id"].startswith("Root=1-")
    assert json.loads(headers["lambda-runtime-client-context"]) == {"custom": {"a": 1}}
    assert int(headers["lambda-runtime-deadline-ms"]) > 0
    assert result.payload["env"]["_HANDLER"] == "my.handler"


def test_missing_bootstrap_is_invalid_entrypoint(serve):
    fn = serve("provided/missing", runtime="provided", handler="x")
    result = fn.invoke({})
    assert result.function_error == "Unhandled"
    assert result.payload["errorType"] == "Runtime.InvalidEntrypoint"
    assert "Couldn't find valid bootstrap" in result.payload["errorMessage"]


def test_runtime_api_refuses_what_the_state_does_not_allow(serve):
    fn = serve("provided/misbehave", runtime="provided", handler="x")
    first = fn.invoke({})
    report = first.payload
    assert report["unknown_id"]["status"] == 400
    assert report["unknown_id"]["body"]["errorType"] == "InvalidRequestID"
    assert report["init_error_while_invoking"]["status"] == 403
    assert report["init_error_while_invoking"]["body"]["errorType"] == "InvalidStateTransition"
    assert report["next_while_invoking"]["status"] == 403
    after = json.loads(next(line for line in first.log.splitlines() if line.startswith("AFTER "))[6:])
    assert after["first"]["status"] == 202
    # A second response to the same invocation, or an error after it: RAPID refuses the state transition first.
    assert after["second"]["status"] == 403
    assert after["second"]["body"]["errorType"] == "InvalidStateTransition"
    assert after["error_after"]["status"] == 403
    # The environment survived all of it; a stale request id is refused too.
    second = fn.invoke({})
    assert second.payload["previous_id"]["status"] == 400
    assert len(fn.environments()) == 1


def test_request_ids_are_random_version_4_uuids(serve):
    # As Lambda's: a UUID of version 4 and the RFC 4122 variant, whose other 122 bits are random. Over 30 ids, a bit
    # that never changes is a bit the generator fixed (a random one stays the same 30 times once in 2^29).
    fn = serve("python/basic")
    texts = [fn.invoke({"action": "echo"}, tail=False).request_id for _ in range(30)]
    assert all(str(uuid.UUID(text)) == text for text in texts)  # the 8-4-4-4-12 form, in lower case
    ids = [uuid.UUID(text) for text in texts]
    assert len(set(ids)) == len(ids)
    assert all(i.version == 4 and i.variant == uuid.RFC_4122 for i in ids)
    fixed = (0xF000 << 64) | (0xC000 << 48)  # the version's and the variant's bits
    varied = 0
    for i in ids:
        varied |= i.int ^ ids[0].int
    assert varied | fixed == (1 << 128) - 1, f"bits never random: {~(varied | fixed) & ((1 << 128) - 1):032x}"


def test_trace_ids_carry_random_96_bit_roots(serve):
    # X-Ray's format, as the runtime sees it in _X_AMZN_TRACE_ID: Root=1-<epoch seconds, 8 hex>-<96 random bits, 24
    # hex>;Parent=<64 random bits>. Over 30 invocations every bit of the root's random part, and of the parent,
    # changes at least once.
    fn = serve("python/basic")
    traces = [fn.invoke({"action": "env"}, tail=False).payload["_X_AMZN_TRACE_ID"] for _ in range(30)]
    roots, parents = [], []
    for trace in traces:
        match = re.fullmatch(r"Root=1-([0-9a-f]{8})-([0-9a-f]{24});Parent=([0-9a-f]{16});Sampled=0", trace)
        assert match, trace
        roots.append(int(match[2], 16))
        parents.append(int(match[3], 16))
    for values, bits in ((roots, 96), (parents, 64)):
        varied = 0
        for value in values:
            varied |= value ^ values[0]
        assert varied == (1 << bits) - 1, f"bits never random: {~varied & ((1 << bits) - 1):x}"


ERROR_POSTER = """\
#!/usr/bin/env python3
# Posts to /error the body the event gives, with the Lambda-Runtime-Function-Error-Type header if it gives one.
import json, os, urllib.request
API = "http://%s/2018-06-01/runtime" % os.environ["AWS_LAMBDA_RUNTIME_API"]
while True:
    with urllib.request.urlopen(API + "/invocation/next") as response:
        request_id = response.headers["Lambda-Runtime-Aws-Request-Id"]
        event = json.loads(response.read())
    headers = {"Lambda-Runtime-Function-Error-Type": event["header"]} if event.get("header") else {}
    url = "%s/invocation/%s/error" % (API, request_id)
    urllib.request.urlopen(urllib.request.Request(url, event["body"].encode(), headers, method="POST")).read()
"""


def test_a_runtime_error_that_is_not_a_json_object_reaches_the_caller_as_the_message_of_one(serve, tmp_path):
    # A custom runtime may post any text to /error: the caller gets it as errorMessage, under the header's type
    # (Unhandled without one), through Invoke and InvokeWithResponseStream alike.
    bootstrap = tmp_path / "bootstrap"
    bootstrap.write_text(ERROR_POSTER)
    bootstrap.chmod(0o755)
    fn = serve(str(tmp_path), runtime="provided", handler="any")
    typed = fn.invoke({"body": "disk full", "header": "Custom.DiskFull"}, tail=False)
    assert typed.function_error == "Unhandled"
    assert typed.payload == {"errorType": "Custom.DiskFull", "errorMessage": "disk full"}
    untyped = fn.invoke({"body": "[1, 2]"}, tail=False)  # JSON, but not an object
    assert untyped.payload == {"errorType": "Unhandled", "errorMessage": "[1, 2]"}
    # an object without errorType passes as it is; its type is the header's, as InvokeComplete's ErrorCode shows
    streamed = fn.client.invoke_with_response_stream(
        FunctionName=fn.name, Payload=json.dumps({"body": '{"errorMessage": "m"}', "header": "Custom.Header"}).encode()
    )
    (complete,) = list(streamed["EventStream"])
    assert complete["InvokeComplete"]["ErrorCode"] == "Custom.Header"
    assert json.loads(complete["InvokeComplete"]["ErrorDetails"]) == {"errorMessage": "m"}

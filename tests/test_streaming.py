"""Response streaming: a runtime's streamed ``/response`` (chunked body, error trailers) as boto3's
``invoke_with_response_stream`` reads it, and as ``invoke`` gets it whole; the event stream encoding (decoded by
botocore's own parser), the trailer tap and the stream's flow control, without sockets or processes."""

from __future__ import annotations

import asyncio
import base64
import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import botocore.session
import pytest
from botocore.eventstream import EventStream, EventStreamBuffer
from botocore.parsers import EventStreamJSONParser

from conftest import Served, require
from emulator.engine import node_ric
from emulator.engine.invocation import Invocation, Outcome, ResponseStream
from emulator.errors import ConfigError
from runtime_api import MAX_RESPONSE_BYTES, MAX_STREAMED_RESPONSE_BYTES, eventstream

pytestmark = pytest.mark.timeout(60)

STREAMING = "provided/streaming"  # tests/functions/provided/streaming/bootstrap: what it does is in its docstring


def stream_invoke(fn: Served, event: Any, **kwargs: Any) -> tuple[dict[str, Any], list[bytes], dict[str, Any]]:
    """``invoke_with_response_stream``, read to the end: the response, the PayloadChunk payloads, InvokeComplete."""
    response = fn.client.invoke_with_response_stream(FunctionName=fn.name, Payload=json.dumps(event).encode(), **kwargs)
    chunks: list[bytes] = []
    complete: dict[str, Any] | None = None
    for item in response["EventStream"]:
        assert complete is None, "nothing may follow InvokeComplete"
        if "PayloadChunk" in item:
            chunks.append(item["PayloadChunk"]["Payload"])
        else:
            complete = item["InvokeComplete"]
    assert complete is not None, "the stream ended without InvokeComplete"
    return response, chunks, complete


def runtime_answers(fn: Served) -> list[str]:
    """What the Runtime API answered the bootstrap's ``/response`` calls, in order (``RESPONSE <status> <body>``)."""
    return [line.split(" ", 2)[1] for line in fn.lines if line.startswith("RESPONSE ")]


@pytest.fixture
def streaming(serve: Callable[..., Served]) -> Served:
    # 30 s: the 200 MB stream of the limit test takes about 1.5 s alone, and several times that on a loaded host;
    # no test here is about the timeout (the one that is serves its own function).
    return serve(STREAMING, runtime="provided", handler="stream", timeout_s=30)


# ------------------------------------------------------------------------------------- a streaming runtime
def test_chunks_are_delivered_then_invoke_complete(streaming: Served) -> None:
    response, chunks, complete = stream_invoke(streaming, {"chunks": ["alpha ", "beta ", "gamma"]}, LogType="Tail")
    assert response["StatusCode"] == 200
    assert response["ExecutedVersion"] == "$LATEST"
    assert response["ResponseStreamContentType"] == "application/vnd.amazon.eventstream"
    assert b"".join(chunks) == b"alpha beta gamma"
    assert "ErrorCode" not in complete and "ErrorDetails" not in complete
    log = base64.b64decode(complete["LogResult"]).decode()
    assert "RESPONSE 202" in log  # the runtime's /response was accepted
    assert log.rstrip("\n").splitlines()[-1].startswith("REPORT RequestId:")
    assert runtime_answers(streaming) == ["202"]
    _, _, without_tail = stream_invoke(streaming, {"chunks": ["again"]})
    assert "LogResult" not in without_tail
    assert len(streaming.environments()) == 1


def test_the_first_chunk_reaches_the_caller_before_the_function_writes_the_next(
    streaming: Served, tmp_path: Path
) -> None:
    # After its first chunk the function blocks opening this FIFO, until the test opens it: the test does so only
    # once it has read that chunk, so the test cannot pass unless chunks are forwarded as they come.
    go = tmp_path / "go"
    os.mkfifo(go)
    response = streaming.client.invoke_with_response_stream(
        FunctionName=streaming.name, Payload=json.dumps({"chunks": ["first", "second"], "wait_for": str(go)}).encode()
    )
    events = iter(response["EventStream"])
    assert next(events) == {"PayloadChunk": {"Payload": b"first"}}
    with open(go, "wb") as fifo:
        fifo.write(b"go")
    rest = list(events)
    assert b"".join(item["PayloadChunk"]["Payload"] for item in rest[:-1]) == b"second"
    assert rest[-1] == {"InvokeComplete": {}}


def test_an_error_trailer_ends_the_stream_with_the_function_error(streaming: Served) -> None:
    _, chunks, complete = stream_invoke(streaming, {"chunks": ["partial "], "error": "Custom.Failure"})
    assert b"".join(chunks) == b"partial "
    assert complete["ErrorCode"] == "Custom.Failure"
    details = json.loads(complete["ErrorDetails"])  # the base64 Error-Body trailer, decoded
    assert details == {"errorType": "Custom.Failure", "errorMessage": "failed mid-stream: Custom.Failure"}
    # The environment lives on; the next stream is fine.
    _, chunks, complete = stream_invoke(streaming, {"chunks": ["fine"]}, LogType="Tail")
    assert (b"".join(chunks), complete.get("ErrorCode")) == (b"fine", None)
    assert runtime_answers(streaming) == ["202", "202"]  # the tail waits for the runtime to be back in `next`
    assert len(streaming.environments()) == 1


def test_a_streamed_invocation_is_on_the_timeline_with_how_it_ended(streaming: Served) -> None:
    # recorded once the stream has ended (the caller may still be reading): a complete stream as a success, one ended
    # by an error trailer with its error type
    ok, _, _ = stream_invoke(streaming, {"chunks": ["fine"]})
    failed, _, _ = stream_invoke(streaming, {"chunks": ["partial "], "error": "Custom.Failure"})
    expected = {ok["ResponseMetadata"]["RequestId"]: None, failed["ResponseMetadata"]["RequestId"]: "Custom.Failure"}

    def recorded(emulator: Any) -> dict[str, str | None]:
        return {e.detail["request_id"]: e.detail["error_type"] for e in emulator.timeline.events if e.kind == "invoke"}

    streaming.wait_for(lambda emulator: expected.keys() <= recorded(emulator).keys(), timeout_s=10)
    assert recorded(streaming.emulator.emulator) == expected


def test_invoke_gets_a_streamed_response_whole(streaming: Served) -> None:
    ok = streaming.invoke({"chunks": ['{"streamed": ', "true}"]}, tail=False)
    assert (ok.function_error, ok.payload) == (None, {"streamed": True})
    failed = streaming.invoke({"chunks": ["{}"], "error": "Custom.Failure"}, tail=False)
    assert failed.function_error == "Unhandled"
    assert failed.payload["errorType"] == "Custom.Failure"


def test_over_the_streaming_limit_the_stream_ends_with_response_size_too_large(streaming: Served) -> None:
    event = {"chunks": ["head"], "filler_bytes": MAX_STREAMED_RESPONSE_BYTES}
    _, chunks, complete = stream_invoke(streaming, event, LogType="Tail")
    assert sum(len(chunk) for chunk in chunks) == MAX_STREAMED_RESPONSE_BYTES  # what fits, then the error
    assert chunks[0].startswith(b"head")
    assert complete["ErrorCode"] == "Function.ResponseSizeTooLarge"
    assert f"({MAX_STREAMED_RESPONSE_BYTES} bytes)" in json.loads(complete["ErrorDetails"])["errorMessage"]
    assert runtime_answers(streaming) == ["413"]  # RequestEntityTooLarge to the runtime, as RAPID answers
    _, chunks, complete = stream_invoke(streaming, {"chunks": ["after"]})
    assert (b"".join(chunks), complete) == (b"after", {})


def test_a_streamed_response_to_invoke_keeps_the_buffered_limit(streaming: Served) -> None:
    result = streaming.invoke({"chunks": ["x"], "filler_bytes": MAX_RESPONSE_BYTES})
    assert result.function_error == "Unhandled"
    assert result.payload["errorType"] == "Function.ResponseSizeTooLarge"
    assert runtime_answers(streaming) == ["413"]


def test_a_timeout_mid_stream_ends_the_stream_with_sandbox_timedout(
    serve: Callable[..., Served], tmp_path: Path
) -> None:
    fn = serve(STREAMING, runtime="provided", handler="stream", timeout_s=1)
    never = tmp_path / "never-opened"
    os.mkfifo(never)
    _, chunks, complete = stream_invoke(fn, {"chunks": ["first", "second"], "wait_for": str(never)})
    assert chunks == [b"first"]
    assert complete["ErrorCode"] == "Sandbox.Timedout"
    assert "Task timed out after 1.00 seconds" in json.loads(complete["ErrorDetails"])["errorMessage"]
    _, chunks, complete = stream_invoke(fn, {"chunks": ["cold again"]})
    assert (b"".join(chunks), complete) == (b"cold again", {})


def test_a_crash_mid_stream_ends_the_stream_with_an_error(streaming: Served, tmp_path: Path) -> None:
    go = tmp_path / "go"
    os.mkfifo(go)
    event = {"chunks": ["one", "two"], "wait_for": str(go), "exit_after_first": True}
    response = streaming.client.invoke_with_response_stream(
        FunctionName=streaming.name, Payload=json.dumps(event).encode()
    )
    events = iter(response["EventStream"])
    assert next(events) == {"PayloadChunk": {"Payload": b"one"}}
    with open(go, "wb") as fifo:  # the function exits once it has read this
        fifo.write(b"go")
    (end,) = list(events)
    complete = end["InvokeComplete"]
    # Which the emulator sees first, the dropped connection or the exit, is the kernel's choice.
    assert complete["ErrorCode"] in ("Runtime.TruncatedResponse", "Runtime.ExitError")
    _, chunks, complete = stream_invoke(streaming, {"chunks": ["replaced"]})
    assert (b"".join(chunks), complete) == (b"replaced", {})


def test_an_unknown_response_mode_fails_the_invocation(streaming: Served) -> None:
    result = streaming.invoke({"chunks": ["x"], "mode": "sideways"})
    assert result.function_error == "Unhandled"
    assert result.payload["errorType"] == "Runtime.InvalidResponseModeHeader"
    assert runtime_answers(streaming) == ["400"]


# ------------------------------------------------------------------------- buffered functions, the API itself
def test_a_buffered_response_is_one_payload_chunk(streaming: Served, serve: Callable[..., Served]) -> None:
    _, chunks, complete = stream_invoke(streaming, {"buffered": {"whole": [1, 2, 3]}})
    assert (chunks, complete) == ([b'{"whole": [1, 2, 3]}'], {})
    python = serve("python/basic")  # awslambdaric has no streaming mode: its functions answer buffered
    _, chunks, complete = stream_invoke(python, {"action": "echo", "n": 1}, LogType="Tail")
    assert [json.loads(chunk) for chunk in chunks] == [{"action": "echo", "n": 1}]
    assert "ErrorCode" not in complete
    assert "REPORT RequestId:" in base64.b64decode(complete["LogResult"]).decode()
    _, chunks, complete = stream_invoke(python, {"action": "raise", "detail": "nope"})
    assert chunks == []
    assert complete["ErrorCode"] == "ValueError"
    assert json.loads(complete["ErrorDetails"])["errorMessage"] == "bad input: nope"


def test_the_streaming_api_refuses_what_lambda_refuses(streaming: Served) -> None:
    client = streaming.client
    with pytest.raises(client.exceptions.InvalidParameterValueException) as raised:
        client.invoke_with_response_stream(FunctionName="fn", InvocationType="Event", Payload=b"{}")
    assert "[RequestResponse, DryRun]" in str(raised.value)
    with pytest.raises(client.exceptions.ResourceNotFoundException):
        client.invoke_with_response_stream(FunctionName="no-such-function", Payload=b"{}")
    with pytest.raises(client.exceptions.InvalidRequestContentException):
        client.invoke_with_response_stream(FunctionName="fn", Payload=b"{not json")
    dry = client.invoke_with_response_stream(FunctionName="fn", InvocationType="DryRun", Payload=b"{}")
    assert dry["StatusCode"] == 204
    assert list(dry["EventStream"]) == []  # no body (and the connection goes back to the pool)
    assert streaming.environments() == []


NODE_STREAMING = """\
export const handler = awslambda.streamifyResponse(async (event, responseStream) => {
  responseStream.setContentType("text/plain");
  await new Promise((resolve) => responseStream.write("from node ", resolve));
  if (event.fail) {
    throw new Error("node failed mid-stream");
  }
  responseStream.end("done");
});
"""


def test_the_nodejs_runtime_client_streams_and_reports_errors_in_trailers(
    serve: Callable[..., Served], tmp_path: Path
) -> None:
    try:
        node_ric.command("nodejs20.x", tmp_path, "index.handler")
    except ConfigError as exc:
        require(False, exc.message)
    (tmp_path / "index.mjs").write_text(NODE_STREAMING)
    fn = serve(str(tmp_path), runtime="nodejs20.x", handler="index.handler")
    _, chunks, complete = stream_invoke(fn, {})
    assert (b"".join(chunks), complete) == (b"from node done", {})
    _, chunks, complete = stream_invoke(fn, {"fail": True})
    assert b"".join(chunks) == b"from node "
    assert complete["ErrorCode"] == "Error"
    assert json.loads(complete["ErrorDetails"])["errorMessage"] == "node failed mid-stream"
    whole = fn.client.invoke(FunctionName=fn.name, Payload=b"{}")
    assert whole["Payload"].read() == b"from node done"
    assert whole["ResponseMetadata"]["HTTPHeaders"]["content-type"] == "text/plain"


# --------------------------------------------------------------------------- the event stream encoding
class _Raw:
    """What botocore's EventStream reads from: ``stream()`` yields the body in pieces."""

    def __init__(self, data: bytes, piece: int):
        self._data, self._piece = data, piece

    def stream(self) -> Any:
        for start in range(0, len(self._data), self._piece):
            yield self._data[start : start + self._piece]

    def close(self) -> None:
        pass


@pytest.mark.parametrize("piece", [1, 7, 4096])
def test_the_encoding_is_what_botocore_parses(piece: int) -> None:
    body = (
        eventstream.payload_chunk(b"first \x00\xff")
        + eventstream.payload_chunk("zweite — 2".encode())
        + eventstream.payload_chunk(b"")
        + eventstream.invoke_complete("Custom.Failure", '{"errorMessage": "é"}', "TE9H")
    )
    model = botocore.session.get_session().get_service_model("lambda")
    shape = model.operation_model("InvokeWithResponseStream").output_shape.members["EventStream"]
    events = list(EventStream(_Raw(body, piece), shape, EventStreamJSONParser(), "InvokeWithResponseStream"))
    assert events == [
        {"PayloadChunk": {"Payload": b"first \x00\xff"}},
        {"PayloadChunk": {"Payload": "zweite — 2".encode()}},
        {"PayloadChunk": {"Payload": b""}},
        {
            "InvokeComplete": {
                "ErrorCode": "Custom.Failure",
                "ErrorDetails": '{"errorMessage": "é"}',
                "LogResult": "TE9H",
            }
        },
    ]
    buffer = EventStreamBuffer()  # checks both CRCs of every message
    buffer.add_data(eventstream.invoke_complete())
    (message,) = list(buffer)
    assert message.headers == {
        ":event-type": "InvokeComplete",
        ":content-type": "application/json",
        ":message-type": "event",
    }
    assert message.payload == b"{}"


# ---------------------------------------------------------------------------------- the stream's flow control
@pytest.mark.asyncio
async def test_a_writer_waits_while_the_caller_is_behind() -> None:
    stream = ResponseStream(MAX_STREAMED_RESPONSE_BYTES, "text/plain", forward=True)
    big = b"x" * (ResponseStream.QUEUE_BYTES + 1)
    writer = asyncio.create_task(stream.write(big))
    await stream._readable.wait()  # the writer's chunk is queued: in the same step it went on to wait for room
    assert not writer.done()
    chunks = stream.chunks()
    assert await anext(chunks) == big
    assert await writer is True
    stream.close(None, None)
    assert [chunk async for chunk in chunks] == []
    assert stream.ended.result() is None


@pytest.mark.asyncio
async def test_over_the_limit_the_stream_keeps_what_fits_and_ends_with_the_error() -> None:
    stream = ResponseStream(10, "text/plain", forward=True)
    assert await stream.write(b"123456") is True
    assert await stream.write(b"789abc") is False
    assert [chunk async for chunk in stream.chunks()] == [b"123456", b"789a"]
    error = stream.ended.result()
    assert error is not None and error.error_type == "Function.ResponseSizeTooLarge"


@pytest.mark.asyncio
async def test_a_stream_that_fills_the_limit_to_the_byte_is_complete() -> None:
    stream = ResponseStream(10, "text/plain", forward=True)
    assert await stream.write(b"123456") is True
    assert await stream.write(b"789a") is True  # exactly the 10 bytes allowed: not over the limit
    stream.close(None, None)
    assert [chunk async for chunk in stream.chunks()] == [b"123456", b"789a"]
    assert stream.ended.result() is None


@pytest.mark.asyncio
async def test_an_invocation_that_fails_mid_stream_ends_its_stream() -> None:
    invocation = Invocation(b"{}", "arn:aws:lambda:us-east-1:000000000000:function:fn", streaming_invoke=True)
    stream = ResponseStream(MAX_STREAMED_RESPONSE_BYTES, "text/plain", forward=True)
    invocation.stream = stream
    invocation.resolve(Outcome(b"", None, "text/plain", stream=stream))
    await stream.write(b"before")
    timeout = Outcome.error("Sandbox.Timedout", "Task timed out after 1.00 seconds")
    assert invocation.resolve(timeout) is False  # the caller was answered with the stream already
    assert stream.ended.result() is timeout
    assert await stream.write(b"after") is True  # dropped: the runtime may still be writing
    assert [chunk async for chunk in stream.chunks()] == [b"before"]


@pytest.mark.asyncio
async def test_a_caller_that_goes_away_releases_the_writer() -> None:
    stream = ResponseStream(MAX_STREAMED_RESPONSE_BYTES, "text/plain", forward=True)
    writer = asyncio.create_task(stream.write(b"x" * (ResponseStream.QUEUE_BYTES + 1)))
    await stream._readable.wait()  # queued, and waiting for room
    assert not writer.done()
    stream.abandon()
    assert await writer is True
    assert await stream.write(b"more") is True
    stream.close(None, None)
    assert [chunk async for chunk in stream.chunks()] == []


@pytest.mark.asyncio
async def test_the_writer_is_held_back_once_more_than_one_mib_waits_for_the_caller() -> None:
    stream = ResponseStream(MAX_STREAMED_RESPONSE_BYTES, "text/plain", forward=True)
    async with asyncio.timeout(10):
        assert await stream.write(b"x" * (1024 * 1024)) is True  # 1 MiB queued: the writer goes on
    stream._readable.clear()
    writer = asyncio.create_task(stream.write(b"y"))  # one byte more
    await stream._readable.wait()  # queued: in the same step the writer went on to wait for room
    assert not writer.done()
    chunks = stream.chunks()
    assert await anext(chunks) == b"x" * (1024 * 1024)
    assert await writer is True
    assert await anext(chunks) == b"y"


@pytest.mark.asyncio
async def test_a_buffered_stream_never_holds_the_writer_back() -> None:
    # InvokeWithResponseStream not used: the whole body is kept for the caller, who reads it at the end.
    stream = ResponseStream(MAX_STREAMED_RESPONSE_BYTES, "text/plain", forward=False)
    async with asyncio.timeout(10):
        for _ in range(3):
            assert await stream.write(b"z" * (1024 * 1024)) is True
    stream.close(None, None)
    assert stream.body() == b"z" * (3 * 1024 * 1024)
    assert stream.ended.result() is None


@pytest.mark.asyncio
async def test_a_stream_ended_by_its_trailers_carries_their_error() -> None:
    only_type = ResponseStream(MAX_STREAMED_RESPONSE_BYTES, "text/plain", forward=True)
    only_type.close("Custom.Failure", None)  # an Error-Type trailer without an Error-Body
    error = only_type.ended.result()
    assert error is not None and error.error_type == "Custom.Failure"
    assert json.loads(error.payload) == {"errorType": "Custom.Failure", "errorMessage": ""}
    only_body = ResponseStream(MAX_STREAMED_RESPONSE_BYTES, "text/plain", forward=True)
    only_body.close(None, b'{"errorType": "Body.Type", "errorMessage": "m"}')
    error = only_body.ended.result()
    assert error is not None and error.error_type == "Body.Type"


@pytest.mark.asyncio
async def test_a_stream_abandoned_by_its_caller_has_nothing_more_to_read() -> None:
    stream = ResponseStream(MAX_STREAMED_RESPONSE_BYTES, "text/plain", forward=True)
    await stream.write(b"queued")
    stream.abandon()
    async with asyncio.timeout(10):  # the runtime has not ended it, and the reader is not left waiting
        assert [chunk async for chunk in stream.chunks()] == []
    assert not stream.ended.done()

"""Fuzzed Invoke and Runtime APIs: malformed, oversized, truncated, wrongly encoded and out-of-order requests, sent
through a real HTTP client and over raw sockets to ``lambda-freeze serve`` running a real awslambdaric function.

Properties: the emulator never crashes; no 5xx that Lambda would not give; every error in the shape of its API;
every invocation the emulator accepted ends (its REPORT line comes) and a normal invocation succeeds afterwards,
with every environment frozen; the emulator's memory (VmRSS) stays put under a large batch.

Examples per property: moderate by default; ``LAMBDA_FREEZE_FUZZ_EXAMPLES=N`` runs N each (and a batch of 10 N in
the memory test). The number of requests sent is printed (``-s``) and recorded as a test property.
"""

from __future__ import annotations

import base64
import http.client
import json
import selectors
import socket
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote

import pytest
from botocore.eventstream import EventStreamBuffer
from fuzzing import (
    ANSWERED,
    SENT,
    ServeProcess,
    assert_aws_error,
    assert_runtime_error,
    examples,
    http_call,
    raw_exchange,
)
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

pytestmark = pytest.mark.timeout(600)

FUNCTION_TIMEOUT_S = 3.0
SETTLE_TIMEOUT_S = FUNCTION_TIMEOUT_S + 15  # REPORT comes at the latest at the function timeout; a loaded machine

# The statuses each API may answer. Lambda's front end gives 5xx only for failures of its own (ServiceException
# 500; EC2, ENI, KMS, EFS and SnapStart failures 502/503): no request content causes one, so fuzzed requests to the
# Invoke API may get none. The Runtime API (RAPID) answers 500 only to a runtime whose environment is shutting
# down (Runtime.Stopped): the fuzzed environment never is.
INVOKE_STATUSES = {200, 202, 204, 400, 404, 405, 413, 429}
RUNTIME_STATUSES = {400, 403, 404, 405, 413}
ALLOWED_5XX: dict[str, set[int]] = {"invoke": set(), "runtime": set()}

INVOKE = "/2015-03-31/functions/{}/invocations"
STREAM = "/2021-11-15/functions/{}/response-streaming-invocations"
NEXT = "/2018-06-01/runtime/invocation/next"
RESPONSE = "/2018-06-01/runtime/invocation/{}/response"
ERROR = "/2018-06-01/runtime/invocation/{}/error"
INIT_ERROR = "/2018-06-01/runtime/init/error"
SYNC_LIMIT = 6 * 1024 * 1024
ASYNC_LIMIT = 1024 * 1024

FUZZ_SETTINGS = {
    "deadline": None,
    "suppress_health_check": [HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.large_base_example],
}


@pytest.fixture(scope="module")
def emulator() -> Iterator[ServeProcess]:
    served = ServeProcess(timeout_s=FUNCTION_TIMEOUT_S)
    try:
        yield served
    finally:
        served.stop()
    assert served.proc.returncode == 0, "".join(served.log[-40:])


@pytest.fixture(autouse=True)
def _count_requests(record_property: Callable[[str, object], None]) -> Iterator[None]:
    sent_before, answered_before = SENT.copy(), ANSWERED.copy()
    yield
    sent, answered = SENT - sent_before, ANSWERED - answered_before
    record_property("requests_sent", dict(sent))
    print(f"\nrequests sent: {dict(sorted(sent.items()))} (total {sent.total()})")
    print(f"answers: {dict(sorted(answered.items()))}")


# ------------------------------------------------------------------------------------------------- after a barrage
def normal_invoke(emulator: ServeProcess, event: Any) -> dict[str, Any]:
    """An ordinary synchronous invocation, as an SDK sends it, that must succeed."""
    status, headers, body = http_call(
        emulator.port,
        "POST",
        INVOKE.format(emulator.name),
        json.dumps(event).encode(),
        {"Content-Type": "application/json", "X-Amz-Log-Type": "Tail"},
        counter="invoke/http",
    )
    assert status == 200 and headers.get("X-Amz-Function-Error") is None, (status, body)
    assert json.loads(body) == event
    return {"request_id": headers["x-amzn-RequestId"], "log": base64.b64decode(headers["X-Amz-Log-Result"])}


def assert_settled(emulator: ServeProcess, accepted: set[str]) -> None:
    """Every accepted invocation ended, the emulator still serves, no environment is stuck in the middle of
    something, and a normal invocation succeeds."""
    assert emulator.alive(), "".join(emulator.log[-40:])
    missing = emulator.wait_reports(accepted, SETTLE_TIMEOUT_S)
    assert not missing, f"invocations accepted that never ended: {sorted(missing)[:5]}"
    normal_invoke(emulator, {"after": "fuzz"})
    states = {env["id"]: env["state"] for env in emulator.environments()}
    assert states and set(states.values()) <= {"frozen", "ready", "stopped"}, states


# ---------------------------------------------------------------------------------------- Invoke API: strategies
def _no_control(value: Any) -> bool:
    return not (isinstance(value, dict) and any(str(key).startswith("__fuzz") for key in value))


JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False) | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=12,
).filter(_no_control)

# Header values http.client can send: Latin-1, no control characters.
HEADER_TEXT = st.text(st.characters(min_codepoint=0x20, max_codepoint=0xFF, exclude_characters="\x7f"), max_size=24)
# A blank header value is no value at all to some servers: only values with something in them are judged.
NON_BLANK_TEXT = HEADER_TEXT.filter(lambda text: bool(text.strip(" \t")))

VALID_NAMES = [
    "fn",
    "function",  # the RIE's URL, when one function is served
    "fn:$LATEST",
    "000000000000:function:fn",
    "arn:aws:lambda:us-east-1:000000000000:function:fn",
    "arn:aws:lambda:us-east-1:000000000000:function:fn:$LATEST",
]
UNKNOWN_NAMES = ["nope", "fn:7", "fn:prod", "arn:aws:lambda:us-east-1:000000000000:function:nope", "a:b:c:d:e"]
NOT_JSON = [
    b"{",
    b"[1,]",
    b"{'a': 1}",
    b"NaN",
    b"1 2",
    b'"unterminated',
    b"\xff\xfe",
    b'{"a": "\xc3\x28"}',
    b"nul\x00l",
]


def _short(data: bytes, keep: int = 400) -> str:
    """Bytes for a failure report: a multi-megabyte body is shown by its ends and its length."""
    if len(data) <= keep:
        return repr(data)
    return f"{data[: keep // 2]!r}...({len(data)} bytes)...{data[-keep // 4 :]!r}"


@dataclass
class Body:
    data: bytes
    event: Any = None  # the event the function receives, when the body is valid
    problem: str | None = None  # the error type the body alone calls for

    def _repr_pretty_(self, printer: Any, cycle: bool) -> None:  # how Hypothesis shows it
        printer.text(f"Body({_short(self.data)}, problem={self.problem})")


@st.composite
def bodies(draw: st.DrawFn, limit: int) -> Body:
    kind = draw(st.sampled_from(["json"] * 10 + ["blank", "not-json", "bad-utf8", "oversized"]))
    if kind == "json":
        value = draw(JSON_VALUES)
        text = json.dumps(value, ensure_ascii=draw(st.booleans()))
        return Body((draw(st.sampled_from(["", " ", "\n"])) + text).encode(), value)
    if kind == "blank":
        return Body(draw(st.sampled_from([b"", b" ", b"\n\t "])), {})
    if kind == "not-json":
        return Body(draw(st.sampled_from(NOT_JSON)), problem="InvalidRequestContentException")
    if kind == "bad-utf8":
        junk = draw(st.binary(min_size=1, max_size=8))
        return Body(b'"' + b"\xff" + junk.replace(b'"', b"") + b'"', problem="InvalidRequestContentException")
    return Body(b'"' + b"x" * (limit - 1) + b'"', problem="RequestTooLargeException")  # one byte over


@dataclass
class InvokeCase:
    api: str  # "invoke" | "stream"
    name: str
    resolvable: bool | None  # None: either answer is right (random text)
    qualifier: str | None
    invocation_type: str | None
    log_type: str | None
    client_context: str | None
    content_type: str | None
    body: Body
    problems: set[str] = field(default_factory=set)

    def path(self) -> str:
        path = (INVOKE if self.api == "invoke" else STREAM).format(quote(self.name, safe=""))
        return path if self.qualifier is None else f"{path}?Qualifier={quote(self.qualifier, safe='')}"

    def headers(self) -> dict[str, str]:
        fields = {
            "X-Amz-Invocation-Type": self.invocation_type,
            "X-Amz-Log-Type": self.log_type,
            "X-Amz-Client-Context": self.client_context,
            "Content-Type": self.content_type,
        }
        return {key: value for key, value in fields.items() if value is not None}

    @property
    def kind(self) -> str:
        return (self.invocation_type or "RequestResponse").strip(" \t")


def _sometimes(draw: st.DrawFn, usual: st.SearchStrategy[Any], odd: st.SearchStrategy[Any], one_in: int = 8) -> Any:
    """Mostly a value a caller would send, now and then an odd one: a case usually has at most one oddity, so
    that each is seen on its own and valid requests are a good part of the run."""
    return draw(odd if draw(st.sampled_from([False] * (one_in - 1) + [True])) else usual)


@st.composite
def invoke_cases(draw: st.DrawFn) -> InvokeCase:
    api = draw(st.sampled_from(["invoke", "invoke", "stream"]))
    choice = _sometimes(draw, st.just("valid"), st.sampled_from(["unknown", "text"]), 4)
    name = draw(
        st.sampled_from(VALID_NAMES)
        if choice == "valid"
        else st.sampled_from(UNKNOWN_NAMES)
        if choice == "unknown"
        else st.text(min_size=1, max_size=30)
    )
    qualifier = _sometimes(draw, st.none() | st.just("$LATEST"), st.sampled_from(["1", "prod", ""]) | HEADER_TEXT)
    resolvable: bool | None = {"valid": True, "unknown": False, "text": None}[choice]
    if resolvable and qualifier not in (None, "$LATEST"):
        resolvable = None if ":" in name.removeprefix("arn:aws:lambda:us-east-1:") else False
    valid_types = ["RequestResponse", "Event", "DryRun"] if api == "invoke" else ["RequestResponse", "DryRun"]
    invocation_type = _sometimes(
        draw,
        st.none() | st.sampled_from(valid_types),
        st.sampled_from(["Event", "event", "Tail", " DryRun"]) | NON_BLANK_TEXT,
    )
    log_type = _sometimes(draw, st.sampled_from([None, "None", "Tail"]), st.just("tail") | NON_BLANK_TEXT)
    client_context = _sometimes(
        draw,
        st.none()
        | st.dictionaries(st.text(max_size=6), st.text(max_size=6), max_size=3).map(
            lambda d: base64.b64encode(json.dumps({"custom": d}).encode()).decode()
        ),
        st.binary(max_size=12).map(lambda b: base64.b64encode(b"\xff" + b).decode())  # base64, not JSON
        | HEADER_TEXT.map(lambda t: "!" + t),  # not base64
    )
    content_type = _sometimes(
        draw,
        st.sampled_from([None, "application/json"]),
        st.sampled_from(["text/plain", "application/x-www-form-urlencoded", "multipart/form-data"]) | HEADER_TEXT,
        3,
    )
    stripped_type = (invocation_type or "RequestResponse").strip(" \t")
    body = draw(bodies(ASYNC_LIMIT if stripped_type == "Event" else SYNC_LIMIT))
    problems = set()
    if stripped_type not in valid_types:
        problems.add("InvalidParameterValueException")
    if log_type is not None and log_type.strip(" \t") not in ("None", "Tail"):
        problems.add("InvalidParameterValueException")
    if client_context is not None and not _is_base64_json(client_context.strip(" \t")):
        problems.add("InvalidRequestContentException")
    if body.problem:
        problems.add(body.problem)
    return InvokeCase(
        api, name, resolvable, qualifier, invocation_type, log_type, client_context, content_type, body, problems
    )


def _is_base64_json(text: str) -> bool:
    try:
        json.loads(base64.b64decode(text, validate=True))
    except ValueError:
        return False
    return True


def check_invoke_answer(case: InvokeCase, status: int, headers: Any, body: bytes) -> str | None:
    """Judge one answer of the Invoke API; the request id of an invocation it accepted, if it did."""
    assert status in INVOKE_STATUSES | ALLOWED_5XX["invoke"], (status, body[:300])
    if status >= 400:
        error_type = assert_aws_error(status, headers, body)
        allowed = set(case.problems)
        if case.resolvable is False:
            allowed.add("ResourceNotFoundException")
        if case.resolvable is None:  # a name outside Lambda's pattern: refused somehow, as long as it is refused
            allowed |= {
                "ResourceNotFoundException",
                "InvalidParameterValueException",
                "ValidationException",
                "UnknownOperationException",
            }
        assert error_type in allowed, (status, error_type, body[:300], allowed)
        return None
    assert not case.problems and case.resolvable is not False, (status, case.problems, case.name, case.qualifier)
    expected = {"DryRun": 204, "Event": 202}.get(case.kind, 200)
    assert status == expected, (status, body[:300])
    request_id = headers.get("x-amzn-RequestId")
    assert request_id
    if status == 204:
        return None
    if status == 202:
        return str(request_id)
    if case.api == "stream":
        assert headers.get("Content-Type") == "application/vnd.amazon.eventstream"
        buffer = EventStreamBuffer()
        buffer.add_data(body)
        events = [(message.headers[":event-type"], message.payload) for message in buffer]
        assert events and events[-1][0] == "InvokeComplete", events
        assert json.loads(b"".join(payload for kind, payload in events[:-1])) == case.body.event
        assert "ErrorCode" not in json.loads(events[-1][1]), events[-1]
        return str(request_id)
    assert headers.get("X-Amz-Function-Error") is None, body[:300]
    assert json.loads(body) == case.body.event
    if case.log_type is not None and case.log_type.strip(" \t") == "Tail":
        tail = base64.b64decode(headers["X-Amz-Log-Result"]).decode()
        assert tail.rstrip("\n").splitlines()[-1].startswith(f"REPORT RequestId: {request_id}"), tail[-300:]
    return str(request_id)


def send_invoke_case(emulator: ServeProcess, case: InvokeCase) -> str | None:
    try:
        status, headers, body = http_call(
            emulator.port, "POST", case.path(), case.body.data, case.headers(), counter="invoke/http"
        )
    except (BrokenPipeError, ConnectionResetError):
        # An oversized body: the server may answer 413 and close before taking all of it, as Lambda's front end
        # does. http.client cannot read that answer once its send failed; the raw-socket test reads it.
        assert case.body.problem == "RequestTooLargeException", case
        return None
    return check_invoke_answer(case, status, headers, body)


def run_property(count: int, strategy: st.SearchStrategy[Any], check: Callable[[Any], None]) -> None:
    """``check`` on ``count`` examples drawn from ``strategy``; Hypothesis shrinks a failure to its simplest."""

    @settings(max_examples=count, **FUZZ_SETTINGS)  # type: ignore[arg-type]
    @given(case=strategy)
    def holds(case: Any) -> None:
        check(case)

    holds()


def fuzz_invoke_http(emulator: ServeProcess, count: int, accepted: set[str]) -> None:
    def check(case: InvokeCase) -> None:
        request_id = send_invoke_case(emulator, case)
        if request_id:
            accepted.add(request_id)

    run_property(count, invoke_cases(), check)


def test_invoke_api_over_an_http_client(emulator):
    accepted: set[str] = set()
    fuzz_invoke_http(emulator, examples(80), accepted)
    assert_settled(emulator, accepted)


# ----------------------------------------------------------------------------------------- raw HTTP requests
@dataclass
class RawCase:
    data: bytes
    truncated: bool  # the request is incomplete: the client shuts its sending side and waits for the close

    def _repr_pretty_(self, printer: Any, cycle: bool) -> None:  # how Hypothesis shows it
        printer.text(f"RawCase({_short(self.data)}, truncated={self.truncated})")


def _chunked(payload: bytes, sizes: list[int], *, extension: bytes = b"", trailers: bytes = b"") -> bytes:
    out, rest = [], payload
    for size in sizes:
        if not rest:
            break
        piece, rest = rest[:size], rest[size:]
        out.append(b"%x%s\r\n%s\r\n" % (len(piece), extension, piece))
    if rest:
        out.append(b"%x\r\n%s\r\n" % (len(rest), rest))
    return b"".join(out) + b"0\r\n" + trailers + b"\r\n"


HEADER_GARBAGE = [
    b"no colon here",
    b": empty name",
    b"Bad Name: value",
    b"X-Latin: \xe9\xff\xfe",
    b"X-Nul: a\x00b",
    b"X-Folded: first\r\n  continued",
    b"X-Huge: " + b"h" * 9000,
    b"X-Amz-Log-Type: \xff",
    b"X-Amz-Invocation-Type: Event\x00",
    b"X-Amz-Client-Context: \x80\x81",
    b"Content-Type: \xff/\xfe",
    b"Expect: 100-continue",
    b"Expect: something-else",
    b"Content-Encoding: gzip",
    b"Content-Encoding: \xff",
    b"Host: a, b",
    b"Connection: keep-alive, upgrade",
    b"Upgrade: h2c",
]


@st.composite
def raw_invoke_cases(draw: st.DrawFn, port_paths: tuple[str, ...] = (INVOKE, STREAM)) -> RawCase:
    body = draw(bodies(SYNC_LIMIT).filter(lambda b: b.problem != "RequestTooLargeException")).data
    if draw(st.sampled_from([False] * 19 + [True])):
        body = b'"' + b"x" * SYNC_LIMIT + b'"'  # over the limit
    method = draw(st.sampled_from([b"POST"] * 6 + [b"GET", b"PUT", b"post", b"P\xffST", b"PO ST", b""]))
    path = draw(st.sampled_from(port_paths)).format(draw(st.sampled_from(["fn", "function", "nope", "%zz", "a%00b"])))
    target = draw(
        st.sampled_from(
            [path.encode()] * 6
            + [
                b"http://127.0.0.1" + path.encode(),
                b"*",
                path.encode() + b"?Qualifier=%ff&Qualifier=1",
                path.encode() + b"?" + b"q" * 10_000,
                b"/" + b"a" * 20_000,
                path.encode().replace(b"/functions/", b"/functions//"),
                b"/2015-03-31/functions/\xff\xfe/invocations",
                b"/../" + path.encode(),
                b"",
            ]
        )
    )
    version = draw(st.sampled_from([b"HTTP/1.1"] * 6 + [b"HTTP/1.0", b"HTTP/2.0", b"HTTP/9.9", b"HTTX/1.1", b""]))
    eol = draw(st.sampled_from([b"\r\n"] * 5 + [b"\n"]))
    headers = [b"Host: 127.0.0.1"]
    headers += draw(st.lists(st.sampled_from(HEADER_GARBAGE), max_size=3))
    framing = draw(
        st.sampled_from(
            [
                "length",
                "length",
                "chunked",
                "chunked-ext-trailers",
                "short-length",
                "long-length",
                "negative-length",
                "junk-length",
                "duplicate-length",
                "length-and-chunked",
                "chunked-bad-size",
                "chunked-huge-size",
                "chunked-truncated",
                "chunked-no-final",
                "unknown-coding",
                "none",
            ]
        )
    )
    truncated = False
    if framing == "length":
        headers.append(b"Content-Length: %d" % len(body))
        payload = body
    elif framing in ("chunked", "chunked-ext-trailers"):
        headers.append(b"Transfer-Encoding: chunked")
        sizes = draw(st.lists(st.integers(1, 64), max_size=6))
        if framing == "chunked":
            payload = _chunked(body, sizes)
        else:
            payload = _chunked(body, sizes, extension=b";name=value", trailers=b"X-Trailer: t\r\n")
    elif framing == "short-length":
        headers.append(b"Content-Length: %d" % max(0, len(body) - 1))
        payload = body
    elif framing == "long-length":
        headers.append(b"Content-Length: %d" % (len(body) + draw(st.integers(1, 1000))))
        payload, truncated = body, True
    elif framing == "negative-length":
        headers.append(b"Content-Length: -%d" % len(body))
        payload = body
    elif framing == "junk-length":
        headers.append(draw(st.sampled_from([b"Content-Length: 1e3", b"Content-Length: 0x10", b"Content-Length: "])))
        payload = body
    elif framing == "duplicate-length":
        headers += [b"Content-Length: %d" % len(body), b"Content-Length: %d" % (len(body) + 1)]
        payload = body
    elif framing == "length-and-chunked":
        headers += [b"Content-Length: %d" % len(body), b"Transfer-Encoding: chunked"]
        payload = _chunked(body, [])
    elif framing == "chunked-bad-size":
        headers.append(b"Transfer-Encoding: chunked")
        payload = draw(st.sampled_from([b"zz\r\n", b"-1\r\n", b"1 1\r\n", b"\r\n"])) + body + b"\r\n0\r\n\r\n"
    elif framing == "chunked-huge-size":
        headers.append(b"Transfer-Encoding: chunked")
        payload, truncated = b"ffffffffffffffffffff\r\n" + body, True
    elif framing == "chunked-truncated":
        headers.append(b"Transfer-Encoding: chunked")
        payload, truncated = _chunked(body, [])[: draw(st.integers(0, len(body) + 4))], True
    elif framing == "chunked-no-final":
        headers.append(b"Transfer-Encoding: chunked")
        payload, truncated = b"%x\r\n%s\r\n" % (len(body), body), True
    elif framing == "unknown-coding":
        headers.append(b"Transfer-Encoding: gzip, identity")
        payload = body
    else:
        payload = body
    if not truncated:
        headers.append(b"Connection: close")
    request_line = b" ".join(part for part in (method, target, version) if part)
    data = eol.join([request_line, *headers]) + eol + eol + payload
    return RawCase(data, truncated or draw(st.sampled_from([False] * 9 + [True])))


def check_raw_replies(api: str, case: RawCase, replies: list[Any], allowed: set[int]) -> set[str]:
    """No 5xx beyond the allowed ones; an error an API handler gave is in that API's shape. The request ids of
    the invocations accepted."""
    accepted = set()
    # A request line naming an HTTP version the server does not speak (HTTP/2.0 in HTTP/1 framing, HTTP/9.9), or
    # none (read as HTTP/0.9), is answered 505 HTTP Version Not Supported (RFC 9110 section 15.6.6): the one 5xx
    # that is the client's doing.
    parts = case.data.split(b"\n", 1)[0].rstrip(b"\r").split(b" ")
    other_version = len(parts) == 2 or parts[-1] in (b"HTTP/2.0", b"HTTP/9.9")
    # A transfer coding other than chunked is answered 501 Not Implemented (RFC 9112 section 6.1), the other 5xx
    # that is the client's doing.
    head = case.data.split(b"\r\n\r\n", 1)[0].lower()
    codings = [line.split(b":", 1)[1].strip() for line in head.split(b"\r\n") if line.startswith(b"transfer-encoding:")]
    other_coding = bool(codings) and b", ".join(codings) != b"chunked"
    for reply in replies:
        if reply.status == 505 and other_version:
            continue
        if reply.status == 501 and other_coding:
            continue
        assert reply.status < 500 or reply.status in ALLOWED_5XX[api], (reply.status, reply.body[:300], case)
        ANSWERED[f"{api} said {reply.version}"] += reply.version not in ("HTTP/1.0", "HTTP/1.1")
        assert 200 <= reply.status < 500, (reply.status, case.data[:300])
        if api == "invoke" and reply.headers.get("x-amzn-ErrorType"):
            assert_aws_error(reply.status, reply.headers, reply.body)
        if api == "invoke" and reply.status in (200, 202) and reply.headers.get("x-amzn-RequestId"):
            accepted.add(reply.headers["x-amzn-RequestId"])
        if api == "runtime" and reply.headers.get_content_type() == "application/json" and reply.status >= 400:
            assert_runtime_error(reply.body)
        assert reply.status in allowed or reply.status >= 400, (reply.status, case.data[:300])
    return accepted


def fuzz_invoke_raw(emulator: ServeProcess, count: int, accepted: set[str]) -> None:
    def check(case: RawCase) -> None:
        exchange = raw_exchange(emulator.port, case.data, half_close=case.truncated, counter="invoke/raw")
        assert exchange.closed
        accepted.update(check_raw_replies("invoke", case, exchange.replies, INVOKE_STATUSES))

    run_property(count, raw_invoke_cases(), check)


def test_invoke_api_over_raw_sockets(emulator):
    accepted: set[str] = set()
    fuzz_invoke_raw(emulator, examples(120), accepted)
    assert_settled(emulator, accepted)


# ------------------------------------------------------------------------------- Runtime API of a live environment
@dataclass(frozen=True)
class Target:
    """A live environment and its Runtime API endpoint, as its runtime knows it (AWS_LAMBDA_RUNTIME_API)."""

    env_id: str
    pid: int
    port: int
    stale_request_id: str


def live_target(emulator: ServeProcess) -> Target:
    # With the log tail, the answer comes once the runtime is back in `next`: the environment is frozen again, and
    # no `next` sent from here could slip in before the runtime's own.
    status, headers, body = http_call(
        emulator.port,
        "POST",
        INVOKE.format(emulator.name),
        b'{"__fuzz_env": true}',
        {"X-Amz-Log-Type": "Tail"},
        counter="invoke/http",
    )
    assert status == 200, body
    answer = json.loads(body)
    (env,) = [env for env in emulator.environments() if env["pid"] == answer["pid"]]
    port = int(answer["environ"]["AWS_LAMBDA_RUNTIME_API"].rsplit(":", 1)[1])
    return Target(env["id"], answer["pid"], port, headers["x-amzn-RequestId"])


RUNTIME_ROUTES = [
    ("GET", NEXT),
    ("POST", RESPONSE),
    ("POST", ERROR),
    ("POST", INIT_ERROR),
    ("POST", "/2020-01-01/extension/register"),
    ("GET", "/2020-01-01/extension/event/next"),
    ("POST", "/2020-01-01/extension/init/error"),
    ("POST", "/2020-01-01/extension/exit/error"),
]
RUNTIME_HEADERS = st.dictionaries(
    st.sampled_from(
        [
            "Lambda-Runtime-Function-Response-Mode",
            "Lambda-Runtime-Function-Error-Type",
            "Lambda-Extension-Name",
            "Lambda-Extension-Identifier",
            "Lambda-Extension-Function-Error-Type",
            "Content-Type",
        ]
    ),
    st.sampled_from(["streaming", "buffered", "Runtime.Unknown", str(uuid.uuid4()), "application/json"]) | HEADER_TEXT,
    max_size=3,
)


@dataclass
class RuntimeCase:
    method: str
    path: str
    known: bool  # a route and method the Runtime API has
    headers: dict[str, str]
    body: bytes
    raw: RawCase | None  # sent as these bytes instead, over a socket


@st.composite
def runtime_cases(draw: st.DrawFn, stale_request_id: str) -> RuntimeCase:
    method, template = draw(st.sampled_from(RUNTIME_ROUTES))
    request_id = draw(
        st.sampled_from([stale_request_id, str(uuid.uuid4()), ""]) | st.text(min_size=1, max_size=40).map(quote)
    )
    path = template.format(quote(request_id, safe="")) if "{}" in template else template
    known = bool(request_id) or "{}" not in template
    if draw(st.sampled_from([False] * 5 + [True])):
        method = draw(st.sampled_from(["PUT", "DELETE", "PATCH", "OPTIONS", "GET" if method == "POST" else "POST"]))
        known = False
    if draw(st.sampled_from([False] * 5 + [True])):
        path = draw(
            st.sampled_from(["/2018-06-01/runtime/", "/2018-06-01/runtime/invocation/next/x", "/", "/2019-01-01/x"])
            | st.text(st.characters(min_codepoint=0x21, max_codepoint=0x7E), max_size=40).map(lambda t: "/" + t)
        )
        known = False
    body = draw(
        st.sampled_from([b"", b"{}", b'{"errorType": "E", "errorMessage": "m"}', b'{"events": ["INVOKE"]}', b"\xff"])
        | st.binary(max_size=64)
    )
    raw = None
    if draw(st.booleans()):
        framing = draw(st.sampled_from(["chunked", "trailers", "truncated", "long-length", "garbage-header"]))
        head = [f"{method} {path} HTTP/1.1".encode(), b"Host: 127.0.0.1"]
        head += [f"{key}: {value}".encode("latin-1") for key, value in draw(RUNTIME_HEADERS).items()]
        truncated = framing in ("truncated", "long-length")
        if framing in ("chunked", "trailers", "truncated"):
            head.append(b"Transfer-Encoding: chunked")
            trailers = b"Lambda-Runtime-Function-Error-Type: Fuzz.Error\r\nLambda-Runtime-Function-Error-Body: !!\r\n"
            payload = _chunked(body, [3, 5], trailers=trailers if framing == "trailers" else b"")
            if truncated:
                payload = payload[: draw(st.integers(0, max(0, len(payload) - 6)))]
        elif framing == "long-length":
            head.append(b"Content-Length: %d" % (len(body) + 10))
            payload = body
        else:
            head += [draw(st.sampled_from(HEADER_GARBAGE)), b"Content-Length: %d" % len(body)]
            payload = body
        if not truncated:
            head.append(b"Connection: close")
        raw = RawCase(b"\r\n".join(head) + b"\r\n\r\n" + payload, truncated)
    return RuntimeCase(method, path, known, draw(RUNTIME_HEADERS), body, raw)


def assert_untouched(emulator: ServeProcess, target: Target, invocations: int) -> None:
    (env,) = [env for env in emulator.environments() if env["id"] == target.env_id]
    assert (env["pid"], env["state"], env["invocations"]) == (target.pid, "frozen", invocations), env


def fuzz_runtime_api(emulator: ServeProcess, target: Target, count: int) -> None:
    (env,) = [env for env in emulator.environments() if env["id"] == target.env_id]
    invocations = env["invocations"]

    def check(case: RuntimeCase) -> None:
        if case.raw is not None:
            exchange = raw_exchange(target.port, case.raw.data, half_close=case.raw.truncated, counter="runtime/raw")
            assert exchange.closed
            check_raw_replies("runtime", case.raw, exchange.replies, RUNTIME_STATUSES)
        else:
            status, _, body = http_call(
                target.port, case.method, case.path, case.body, case.headers, timeout_s=15, counter="runtime/http"
            )
            assert status in RUNTIME_STATUSES | ALLOWED_5XX["runtime"], (status, body[:300], case)
            if case.known and status in (400, 403, 413):
                assert_runtime_error(body)
            if not case.known:
                assert status in (400, 403, 404, 405), (status, body[:300], case)
        # Nothing a stranger sends moves the environment: it stays frozen, with its runtime, waiting in `next`.
        assert_untouched(emulator, target, invocations)

    run_property(count, runtime_cases(target.stale_request_id), check)


def test_runtime_api_of_a_live_environment(emulator):
    target = live_target(emulator)
    fuzz_runtime_api(emulator, target, examples(150))
    assert_settled(emulator, set())


# ----------------------------------------------------------------------------- out of order, during an invocation
class Held:
    """An invocation in flight, held by the function until ``release``: its request id and Runtime API endpoint
    are known, and its caller is a raw socket the test reads (or drops)."""

    def __init__(self, emulator: ServeProcess):
        self._listener = socket.create_server(("127.0.0.1", 0))
        self._listener.settimeout(30)
        event = json.dumps({"__fuzz_hold": self._listener.getsockname()[1]}).encode()
        self.caller: socket.socket | None = socket.create_connection(("127.0.0.1", emulator.port), timeout=30)
        self.caller.sendall(
            b"POST %s HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: %d\r\nConnection: close\r\n\r\n%s"
            % (INVOKE.format(emulator.name).encode(), len(event), event)
        )
        SENT["invoke/raw"] += 1
        self._function, _ = self._listener.accept()
        request_id, runtime_api = self._function.makefile().readline().split()
        self.request_id = request_id
        self.runtime_port = int(runtime_api.rsplit(":", 1)[1])

    def drop_caller(self) -> None:
        if self.caller is not None:
            self.caller.close()
            self.caller = None

    def release(self) -> tuple[int, Any, bytes] | None:
        """Let the handler return; the caller's answer, unless it went away."""
        self._function.close()
        self._listener.close()
        if self.caller is None:
            return None
        response = http.client.HTTPResponse(self.caller)  # type: ignore[arg-type]
        try:
            response.begin()
            answer = response.status, response.msg, response.read()
        finally:
            response.close()
            self.drop_caller()
        return answer


OUT_OF_ORDER = [
    "next",
    "response-stale",
    "error-unknown",
    "init-error",
    "register-extension",
    "response-current",
    "error-current",
    "stream-current",
    "stream-truncated-current",
    "unknown-path",
    "wrong-method",
    "caller-leaves",
]


@dataclass
class Answer:
    kind: str  # response | error | stream | truncated
    body: bytes = b""
    error_type: str | None = None


def _chunked_request(path: str, chunks: list[bytes], trailers: bytes, *, complete: bool) -> bytes:
    head = (
        f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nLambda-Runtime-Function-Response-Mode: streaming\r\n"
        "Transfer-Encoding: chunked\r\nTrailer: Lambda-Runtime-Function-Error-Type\r\n"
        + ("Connection: close\r\n" if complete else "")
        + "\r\n"
    ).encode()
    body = b"".join(b"%x\r\n%s\r\n" % (len(chunk), chunk) for chunk in chunks if chunk)
    return head + body + (b"0\r\n" + trailers + b"\r\n" if complete else b"")


def run_out_of_order(
    emulator: ServeProcess, held: Held, actions: list[tuple[str, bytes]], stale_request_id: str
) -> Answer | None:
    """Send each action to the held invocation's Runtime API; the answer one of them gave the invocation."""
    answer: Answer | None = None
    port, rid = held.runtime_port, held.request_id

    def call(method: str, path: str, body: bytes = b"", headers: dict[str, str] | None = None) -> tuple[int, bytes]:
        status, _, reply = http_call(port, method, path, body, headers, timeout_s=15, counter="runtime/http")
        return status, reply

    def expect(result: tuple[int, bytes], status: int, error_type: str | None = None) -> None:
        assert result[0] == status, (result, status, actions)
        if error_type is not None:
            assert assert_runtime_error(result[1]) == error_type, result

    def refusal() -> tuple[int, str]:
        """RAPID's order: the state first (no invocation waits for an answer once one was posted), then the id."""
        return (403, "InvalidStateTransition") if answer is not None else (400, "InvalidRequestID")

    for action, data in actions:
        if action == "next":
            if answer is None:  # after an answer a `next` is the runtime's own business: it would take the event
                expect(call("GET", NEXT), 403, "InvalidStateTransition")
        elif action == "response-stale":
            expect(call("POST", RESPONSE.format(stale_request_id), data), *refusal())
        elif action == "error-unknown":
            expect(call("POST", ERROR.format(uuid.uuid4()), data), *refusal())
        elif action == "init-error":
            expect(call("POST", INIT_ERROR, data), 403, "InvalidStateTransition")
        elif action == "register-extension":
            registered = call(
                "POST", "/2020-01-01/extension/register", b'{"events": []}', {"Lambda-Extension-Name": "x"}
            )
            expect(registered, 403, "Extension.RegistrationClosed")
        elif action == "response-current":
            result = call("POST", RESPONSE.format(rid), data)
            if answer is None:
                expect(result, 202)
                answer = Answer("response", data)
            else:
                expect(result, *refusal())
        elif action == "error-current":
            document = json.dumps({"errorType": "Fuzz.Error", "errorMessage": data.decode("latin-1")}).encode()
            result = call("POST", ERROR.format(rid), document, {"Lambda-Runtime-Function-Error-Type": "Fuzz.Error"})
            if answer is None:
                expect(result, 202)
                answer = Answer("error", document, "Fuzz.Error")
            else:
                expect(result, *refusal())
        elif action == "stream-current":
            chunks = [data[: len(data) // 2], data[len(data) // 2 :]]
            request = _chunked_request(RESPONSE.format(rid), chunks, b"", complete=True)
            exchange = raw_exchange(port, request, half_close=False, counter="runtime/raw")
            (reply,) = exchange.replies
            if answer is None:
                assert reply.status == 202, (reply.status, reply.body)
                answer = Answer("stream", data)
            else:
                assert (reply.status, assert_runtime_error(reply.body)) == refusal(), reply.body
        elif action == "stream-truncated-current":
            request = _chunked_request(RESPONSE.format(rid), [data or b"x"], b"", complete=False)
            exchange = raw_exchange(port, request, half_close=True, counter="runtime/raw")
            for reply in exchange.replies:  # a server may still answer a request cut short, with a 4xx
                assert 400 <= reply.status < 500, (reply.status, reply.body)
            if answer is None:
                answer = Answer("truncated", error_type="Runtime.TruncatedResponse")
        elif action == "unknown-path":
            assert call("POST", f"/2018-06-01/runtime/invocation/{rid}/bogus", data)[0] == 404
        elif action == "wrong-method":
            assert call("DELETE", RESPONSE.format(rid), data)[0] == 405
        elif action == "caller-leaves":
            held.drop_caller()
    return answer


def check_held_answer(held_request_id: str, answer: Answer | None, reply: tuple[int, Any, bytes]) -> None:
    status, headers, body = reply
    assert status == 200, (status, body[:300])
    assert headers.get("x-amzn-RequestId") == held_request_id
    if answer is None:
        assert headers.get("X-Amz-Function-Error") is None, body
        assert json.loads(body) == {"released": held_request_id}
    elif answer.kind in ("response", "stream"):
        assert headers.get("X-Amz-Function-Error") is None, body
        assert body == answer.body
    else:
        assert headers.get("X-Amz-Function-Error") == "Unhandled", body
        assert json.loads(body)["errorType"] == answer.error_type, body


ACTION_DATA = st.binary(max_size=40) | st.sampled_from([b'"answer"', b"{}", b"\xff\xfe"])


def fuzz_out_of_order(emulator: ServeProcess, stale_request_id: str, count: int, accepted: set[str]) -> None:
    def check(actions: list[tuple[str, bytes]]) -> None:
        held = Held(emulator)
        accepted.add(held.request_id)
        try:
            answer = run_out_of_order(emulator, held, actions, stale_request_id)
        finally:
            reply = held.release()
        if reply is not None:
            check_held_answer(held.request_id, answer, reply)
        # The invocation ends (REPORT) however it was answered: the runtime may have died posting its own
        # answer to an invocation answered already; the environment is then replaced.
        assert not emulator.wait_reports({held.request_id}, SETTLE_TIMEOUT_S), held.request_id

    run_property(count, st.lists(st.tuples(st.sampled_from(OUT_OF_ORDER), ACTION_DATA), max_size=6), check)


def test_out_of_order_runtime_calls_during_an_invocation(emulator):
    stale = live_target(emulator).stale_request_id
    accepted: set[str] = set()
    fuzz_out_of_order(emulator, stale, examples(25), accepted)
    assert_settled(emulator, accepted)


# ------------------------------------------------------------------------------------------------ memory
def test_emulator_memory_is_stable_under_a_barrage():
    """VmRSS of the emulator, sampled after each round of every kind of request, once warm: the lowest of the last
    three rounds against the lowest of the first three. Recent 6 MB bodies may stay resident for some rounds (a
    sample 12-25 MB over), so single samples are not compared; memory kept per request raises every later sample,
    the lowest too."""
    # glibc serves a large allocation from the heap once one of that size was freed (its mmap threshold rises):
    # a freed 6 MB body then stays resident. A fixed threshold gives such bodies back when they are freed, so that
    # what stays is what the emulator keeps.
    emulator = ServeProcess(timeout_s=FUNCTION_TIMEOUT_S, env={"MALLOC_MMAP_THRESHOLD_": str(128 * 1024)})
    try:
        accepted: set[str] = set()

        def round_kb(scale: int) -> int:
            fuzz_invoke_http(emulator, scale * 3, accepted)
            fuzz_invoke_raw(emulator, scale * 4, accepted)
            target = live_target(emulator)  # out-of-order calls replace environments: a live one each time
            fuzz_runtime_api(emulator, target, scale * 2)
            fuzz_out_of_order(emulator, target.stale_request_id, max(1, scale // 4), accepted)
            assert_settled(emulator, accepted)
            for number in range(20):  # buffers that held the round's last large bodies are reused for small ones
                normal_invoke(emulator, {"flush": number})
            return emulator.rss_kb()

        scale = examples(10)
        warm_up = [round_kb(scale) for _ in range(2)]  # every code path, caches and pools filled
        sent_before = SENT.total()
        rounds = [round_kb(scale) for _ in range(8)]
        sent = SENT.total() - sent_before
        print(f"\nemulator VmRSS (kB) after warm-up rounds {warm_up}, then after rounds of {sent} requests {rounds}")
        before_kb, after_kb = min(rounds[:3]), min(rounds[-3:])
        # Allowed: the timeline (up to 100,000 events, a few per invocation, a few hundred bytes each) and the
        # allocator, 4 MB; and copies of two 6 MB bodies, which were seen to stay resident for several rounds in
        # steps of 12.3 MB and to go again later (bounded, not per request). A leak of a body per request, or of
        # 80 KB per request over a default run, exceeds it.
        assert after_kb - before_kb <= 4 * 1024 + 2 * 12_600, (warm_up, rounds, sent)
    finally:
        emulator.stop()


# ------------------------------------------------------------------------------------------ what fuzzing found
# What the fuzzing above once found wrong, each stated as the right behaviour.


def test_undecodable_content_encoding_is_a_client_error(emulator):
    target = live_target(emulator)
    invoke = http_call(
        emulator.port, "POST", INVOKE.format(emulator.name), b"{}", {"Content-Encoding": "gzip"}, counter="invoke/http"
    )
    response = http_call(
        target.port, "POST", RESPONSE.format(uuid.uuid4()), b"{}", {"Content-Encoding": "gzip"}, counter="runtime/http"
    )
    assert invoke[0] == 415 and assert_aws_error(*invoke)  # UnsupportedMediaTypeException: never misread
    assert 400 <= response[0] < 500


def test_a_next_call_whose_connection_closed_never_takes_an_event(emulator):
    """A second `next` reaches the environment after its invocation was answered (by anyone), and its connection
    then closes: that call must not take the next event, which would be lost (the caller would get the
    runtime's crash, or the timeout)."""
    held = Held(emulator)
    assert http_call(held.runtime_port, "POST", RESPONSE.format(held.request_id), b'"early"')[0] == 202
    with (
        socket.create_connection(("127.0.0.1", held.runtime_port), timeout=30) as first,
        socket.create_connection(("127.0.0.1", held.runtime_port), timeout=30) as second,
    ):
        request = b"GET %s HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n" % NEXT.encode()
        first.sendall(request)
        second.sendall(request)
        # One of the two is refused (a next call is already waiting): then the other one waits, and is dropped.
        first.setblocking(False)
        second.setblocking(False)
        with selectors.DefaultSelector() as selector:
            selector.register(first, selectors.EVENT_READ)
            selector.register(second, selectors.EVENT_READ)
            assert selector.select(timeout=30), "neither next call was answered"
    reply = held.release()
    assert reply is not None and reply[2] == b'"early"'
    normal_invoke(emulator, {"after": "an abandoned next"})

"""A debugger really attaches: debugpy's adapter spoken to over the Debug Adapter Protocol (Python), Node's
inspector over its WebSocket (Node.js); a breakpoint is hit, a variable read, the timeout does not fire while
paused, and the environment freezes between invocations as before."""

from __future__ import annotations

import json
import re
import socket
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from conftest import Served, lambda_client, require
from emulator import FunctionConfig, ServerConfig
from emulator.engine import node_ric
from emulator.errors import ConfigError
from emulator.testing import CollectingSink, EmulatorThread

pytestmark = pytest.mark.timeout(90)

PYTHON_APP = """\
def handler(event, context):
    value = event["n"] * 2
    return {"doubled": value}
"""
NODE_APP = """\
exports.handler = async (event) => {
  const value = event.n * 2;
  return { doubled: value };
};
"""
PAUSED_S = 1.5  # longer than the function's 1 s timeout


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class WatchedSink(CollectingSink):
    """Function log lines, with a wait for a line that matches."""

    def __init__(self) -> None:
        super().__init__()
        self._arrived = threading.Condition()

    def __call__(self, function: str, env_id: str, line: str) -> None:
        super().__call__(function, env_id, line)
        with self._arrived:
            self._arrived.notify_all()

    def wait_line(self, function: str, pattern: re.Pattern[str], timeout_s: float = 30.0) -> re.Match[str]:
        def found() -> re.Match[str] | None:
            return next((m for line in self.lines(function) if (m := pattern.search(line))), None)

        with self._arrived:
            assert self._arrived.wait_for(found, timeout_s), f"no line matching {pattern.pattern}"
        match = found()
        assert match is not None
        return match


def debugged(tmp_path: Path, runtime: str, handler: str, port: int) -> Served:
    config = FunctionConfig(
        name="fn", code_dir=tmp_path, handler=handler, runtime=runtime, timeout_s=1, debug_port=port,
        reserved_concurrency=1,
    )  # fmt: skip
    sink = WatchedSink()
    emu = EmulatorThread(ServerConfig(port=0, functions=(config,)), sink=sink).start()
    return Served(emu, lambda_client(emu.url), "fn", sink)


def invoke_in_background(fn: Served, event: dict[str, Any]) -> tuple[threading.Thread, list[Any]]:
    results: list[Any] = []
    thread = threading.Thread(target=lambda: results.append(fn.invoke(event)), daemon=True)
    thread.start()
    return thread, results


# ------------------------------------------------------------------------------------------------ Python
class DapClient:
    """The Debug Adapter Protocol over a socket: Content-Length framed JSON."""

    def __init__(self, port: int, deadline_s: float = 30.0):
        end = time.monotonic() + deadline_s
        while True:
            try:
                self.sock = socket.create_connection(("127.0.0.1", port), timeout=30)
                break
            except ConnectionRefusedError:
                if time.monotonic() > end:
                    raise
                # nothing announces when the runtime's debugpy starts listening; connecting is retried
                time.sleep(0.05)  # wait-ok: a retry of connect, bounded by the deadline
        self.stream = self.sock.makefile("rwb")
        self.seq = 0

    def send(self, command: str, **arguments: Any) -> int:
        self.seq += 1
        body = json.dumps({"seq": self.seq, "type": "request", "command": command, "arguments": arguments}).encode()
        self.stream.write(b"Content-Length: %d\r\n\r\n" % len(body) + body)
        self.stream.flush()
        return self.seq

    def receive(self) -> dict[str, Any]:
        length = 0
        while (line := self.stream.readline().strip()) != b"":
            name, _, value = line.partition(b":")
            if name.lower() == b"content-length":
                length = int(value)
        message: dict[str, Any] = json.loads(self.stream.read(length))
        return message

    def until(self, kind: str, name: str) -> dict[str, Any]:
        key = "event" if kind == "event" else "command"
        while True:
            message = self.receive()
            if message["type"] == kind and message.get(key) == name:
                if kind == "response":
                    assert message["success"], message
                return message

    def close(self) -> None:
        self.stream.close()
        self.sock.close()


def test_python_breakpoint_is_hit_under_debugpy(tmp_path: Path):
    (tmp_path / "app.py").write_text(PYTHON_APP)
    port = free_port()
    fn = debugged(tmp_path, "python3.11", "app.handler", port)
    dap: DapClient | None = None
    try:
        caller, results = invoke_in_background(fn, {"n": 21})  # the cold start starts debugpy, which waits
        dap = DapClient(port)
        dap.send("initialize", clientID="lambda-freeze-test", adapterID="debugpy", pathFormat="path",
                 linesStartAt1=True, columnsStartAt1=True)  # fmt: skip
        dap.until("response", "initialize")
        dap.send("attach", justMyCode=False)
        dap.until("event", "initialized")
        dap.send("setBreakpoints", source={"path": str(tmp_path / "app.py")}, breakpoints=[{"line": 3}])
        assert dap.until("response", "setBreakpoints")["body"]["breakpoints"][0]["verified"]
        dap.send("configurationDone")
        stopped = dap.until("event", "stopped")
        assert stopped["body"]["reason"] == "breakpoint"
        thread_id = stopped["body"]["threadId"]
        dap.send("stackTrace", threadId=thread_id)
        frame = dap.until("response", "stackTrace")["body"]["stackFrames"][0]
        assert frame["line"] == 3 and frame["source"]["path"].endswith("app.py")
        dap.send("evaluate", expression="value", frameId=frame["id"], context="watch")
        assert dap.until("response", "evaluate")["body"]["result"] == "42"
        time.sleep(PAUSED_S)  # wait-ok: paused at the breakpoint past the function's timeout, which must not fire
        dap.send("continue", threadId=thread_id)
        caller.join(30)
        [result] = results
        assert result.function_error is None and result.payload == {"doubled": 42}
        assert "Task timed out" not in result.log
        fn.wait_envs(lambda envs: [env["state"] for env in envs] == ["frozen"])  # still frozen between invocations
        # Thawed for the next invocation, the debugger still attached: the breakpoint is hit again. (While frozen,
        # the debugger cannot answer the IDE at all, as on Lambda's own frozen environments.)
        caller, results = invoke_in_background(fn, {"n": 1})
        stopped = dap.until("event", "stopped")
        dap.send("continue", threadId=stopped["body"]["threadId"])
        caller.join(30)
        assert [result.payload for result in results] == [{"doubled": 2}]
    finally:
        if dap is not None:
            dap.close()
        fn.emulator.stop()


# ------------------------------------------------------------------------------------------------ Node.js
def test_node_breakpoint_is_hit_under_the_inspector(tmp_path: Path):
    from websockets.sync.client import connect

    (tmp_path / "index.js").write_text(NODE_APP)
    try:
        node_ric.command("nodejs20.x", tmp_path, "index.handler")
    except ConfigError as exc:
        require(False, exc.message)
    port = free_port()
    fn = debugged(tmp_path, "nodejs20.x", "index.handler", port)
    try:
        caller, results = invoke_in_background(fn, {"n": 21})
        assert isinstance(fn.sink, WatchedSink)
        url = fn.sink.wait_line("fn", re.compile(r"Debugger listening on (ws://\S+)"))[1]
        assert f"127.0.0.1:{port}/" in url
        with connect(url, max_size=None) as ws:
            ids = iter(range(1, 1000))

            def call(method: str, **params: Any) -> dict[str, Any]:
                request_id = next(ids)
                ws.send(json.dumps({"id": request_id, "method": method, "params": params}))
                while True:
                    message = json.loads(ws.recv(timeout=30))
                    if message.get("id") == request_id:
                        assert "error" not in message, message
                        return message.get("result", {})
                    pending.append(message)

            def event(method: str) -> dict[str, Any]:
                while True:
                    message = pending.pop(0) if pending else json.loads(ws.recv(timeout=30))
                    if message.get("method") == method:
                        return message["params"]

            pending: list[dict[str, Any]] = []
            call("Runtime.enable")
            call("Debugger.enable")
            breakpoint = call("Debugger.setBreakpointByUrl", lineNumber=1, urlRegex=r"index\.js$")  # 0-based
            call("Runtime.runIfWaitingForDebugger")
            paused = event("Debugger.paused")  # --inspect-brk: the client's first line
            if not paused.get("hitBreakpoints"):
                call("Debugger.resume")
                paused = event("Debugger.paused")
            assert paused["hitBreakpoints"] == [breakpoint["breakpointId"]], paused
            frame = paused["callFrames"][0]
            assert frame["functionName"] == "exports.handler" and frame["location"]["lineNumber"] == 1
            got = call("Debugger.evaluateOnCallFrame", callFrameId=frame["callFrameId"], expression="event.n")
            assert got["result"]["value"] == 21
            time.sleep(PAUSED_S)  # wait-ok: paused past the function's timeout, which must not fire
            call("Debugger.resume")
            caller.join(30)
            [result] = results
            assert result.function_error is None and result.payload == {"doubled": 42}
            fn.wait_envs(lambda envs: [env["state"] for env in envs] == ["frozen"])
    finally:
        fn.emulator.stop()


def test_debug_options_choose_one_function(tmp_path: Path):
    from emulator.debugging import with_debugger

    (tmp_path / "app.py").write_text(PYTHON_APP)
    one = FunctionConfig("one", tmp_path, "app.handler", reserved_concurrency=5, prewarm=3)
    two = FunctionConfig("two", tmp_path, "app.handler")
    config = with_debugger(ServerConfig(functions=(one, two)), 5678, "one")
    debugged_one, plain_two = config.functions
    assert (debugged_one.debug_port, debugged_one.reserved_concurrency, debugged_one.prewarm) == (5678, 1, 1)
    assert plain_two.debug_port is None
    with pytest.raises(ConfigError, match=r"name the function to debug with --debug-function \(one, two\)"):
        with_debugger(ServerConfig(functions=(one, two)), 5678, None)
    with pytest.raises(ConfigError, match="no such function; served: one, two"):
        with_debugger(ServerConfig(functions=(one, two)), 5678, "three")

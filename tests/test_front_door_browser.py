"""A real browser against a function URL: Debian's Chromium, driven by playwright-core, fetches from a page's origin
with a custom header, so it sends a CORS preflight first; the front door answers the preflight as the function URL
service does (without invoking the function), and the browser lets the page read the answer, or refuses it when the
origin is not allowed."""

from __future__ import annotations

import http.server
import json
import shutil
import subprocess
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from conftest import Served, require
from emulator.config.http_routes import Cors, FunctionUrl

pytestmark = pytest.mark.timeout(120)

NODE = Path(__file__).parent / "node"
CHROMIUM = "/usr/bin/chromium"


class _Page(http.server.BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        body = b"<!doctype html><title>app</title>"
        self.send_response(200)
        self.send_header("Content-Type", "text/html")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def page_origin() -> Iterator[str]:
    """A page on an origin of its own (a free port on loopback)."""
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Page)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def test_browser_cors_fetch_against_a_function_url(page_origin: str, serve: Callable[..., Served]) -> None:
    require(Path(CHROMIUM).is_file(), "Chromium is missing: apt-get install chromium (make test installs it)")
    require(shutil.which("node") is not None, "node is not on PATH")
    require((NODE / "node_modules/playwright-core").is_dir(), "tests/node is not installed (make test installs it)")
    allowed = Cors(allow_origins=(page_origin,), allow_methods=("POST",), allow_headers=("content-type", "x-token"))
    fn = serve("python/http", name="web", url=FunctionUrl(cors=allowed), server={"api_port": 0})
    port = fn.emulator.emulator.api_port  # type: ignore[union-attr]
    # A second function whose URL allows another origin only: the browser must refuse the page its answer.
    other = serve(
        "python/http",
        name="other",
        url=FunctionUrl(cors=Cors(allow_origins=("https://elsewhere.example",), allow_methods=("POST",))),
        server={"api_port": 0},
    )
    other_port = other.emulator.emulator.api_port  # type: ignore[union-attr]
    out = subprocess.run(
        [
            "node",
            str(NODE / "cors_fetch.mjs"),
            page_origin + "/",
            f"http://web.lambda-url.localhost:{port}/orders/echo",
            f"http://other.lambda-url.localhost:{other_port}/orders/echo",
        ],
        capture_output=True,
        text=True,
        timeout=90,
        check=False,
    )
    assert out.returncode == 0, out.stderr
    report = json.loads(out.stdout.strip().splitlines()[-1])
    assert report["origin"] == page_origin
    allowed_result, refused_result = report["results"]
    assert allowed_result["status"] == 200, allowed_result  # the browser let the page read it: CORS allowed
    event = json.loads(allowed_result["body"])
    assert event["requestContext"]["http"]["method"] == "POST"  # the preflight never reached the function
    assert json.loads(event["body"]) == {"from": "browser"}
    assert event["headers"]["origin"] == page_origin and event["headers"]["x-token"] == "t"
    assert sum(line.startswith("START") for line in fn.lines) == 1
    assert refused_result.get("error", "").startswith("TypeError"), refused_result
    assert not any(line.startswith("START") for line in other.lines)  # its preflight was refused

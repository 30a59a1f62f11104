"""Real frameworks behind the front door, as users deploy them: an Express app through serverless-http (Node.js,
aws-lambda-ric) and an ASGI app through Mangum (Python, awslambdaric), each behind a REST API, an HTTP API and a
function URL: path parameters, repeated query keys, cookies both ways, binary bodies, and the same frozen
environment serving the next request."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import requests

from conftest import Served, require
from emulator.config.http_routes import FunctionUrl, Route
from emulator.engine import node_ric
from emulator.errors import ConfigError

pytestmark = pytest.mark.timeout(120)

TESTS = Path(__file__).parent
# One package: tests/node (its node_modules installed as locked by make test) is the code, express/ the handler's
# folder, as a zip of the project would be; ES modules find packages only inside it (/var/task/node_modules).
EXPRESS = TESTS / "node"
EXPRESS_HANDLER = "express/index.handler"
ASGI = TESTS / "functions/python/asgi"
FRONTS = {
    "rest": {"routes": (Route("rest", "ANY", "/{proxy+}", binary_media_types=("application/octet-stream",)),)},
    "http": {"routes": (Route("http", "ANY", "/{proxy+}"),)},
    "url": {"url": FunctionUrl()},
}


def express_problem() -> str | None:
    if not (TESTS / "node/node_modules/serverless-http/package.json").is_file():
        return "tests/node/node_modules is not installed: run samples/node/install.sh ../../tests/node (make test does)"
    try:
        node_ric.command("nodejs20.x", EXPRESS, EXPRESS_HANDLER)
    except ConfigError as exc:
        return exc.message
    return None


@pytest.fixture(params=["express", "asgi"])
def framework(request: pytest.FixtureRequest) -> dict[str, Any]:
    if request.param == "express":
        problem = express_problem()
        require(problem is None, str(problem))
        return {"code": str(EXPRESS), "runtime": "nodejs20.x", "handler": EXPRESS_HANDLER}
    return {"code": str(ASGI), "runtime": "python3.11", "handler": "app.handler"}


@pytest.mark.parametrize("front", sorted(FRONTS))
def test_framework_behind_each_front(framework: dict[str, Any], front: str, serve: Callable[..., Served]) -> None:
    settings = dict(framework)
    fn = serve(settings.pop("code"), name="app", server={"api_port": 0}, timeout_s=10, **settings, **FRONTS[front])
    emulator = fn.emulator.emulator
    assert emulator is not None and emulator.api_url is not None
    headers = {"Host": f"app.lambda-url.localhost:{emulator.api_port}"} if front == "url" else {}
    base = emulator.api_url

    first = requests.get(f"{base}/items/42?tag=a&tag=b&one=1", headers={**headers, "Cookie": "c=3"}, timeout=30)
    assert first.status_code == 200, first.text
    body = first.json()
    if "id" in body:  # Express: req.params and req.query
        assert body["id"] == "42"
        assert body["query"] == {"tag": ["a", "b"], "one": "1"}
    else:  # ASGI: the path and query string as the app got them
        assert body["path"] == "/items/42"
        assert body["query"] == {"tag": ["a", "b"], "one": ["1"]}
    assert body["cookie"] == "c=3"
    cookies = first.raw.headers.getlist("Set-Cookie")
    assert len(cookies) == 2 and cookies[0].startswith("seen=42"), cookies

    data = bytes(range(256)) * 4
    reversed_ = requests.post(
        f"{base}/reverse", data=data, headers={**headers, "Content-Type": "application/octet-stream"}, timeout=30
    )
    assert reversed_.status_code == 200
    assert reversed_.content == data[::-1]

    fn.wait_envs(lambda envs: len(envs) == 1 and envs[0]["state"] == "frozen")
    again = requests.get(f"{base}/items/7", headers=headers, timeout=30)
    assert again.json()["requests"] == 2  # the same process, thawed: its state is still there

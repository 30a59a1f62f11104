"""The scenario step ``http`` as the loader checks it: what it sends, what an expect step may ask of it, and a
function's routes and URL in a scenario file. (Shipped scenarios run it: scenarios/python/http_api_*.toml.)"""

from __future__ import annotations

from pathlib import Path

import pytest

from emulator import scenario as sc

HTTP = Path(__file__).parent / "functions/python/http"


def load(tmp_path: Path, steps: str, function: str = 'routes = ["GET /orders/{id}"]') -> sc.Scenario:
    path = tmp_path / "scenario.toml"
    path.write_text(f'description = "d"\n[functions.app]\ncode_dir = "{HTTP}"\n{function}\n{steps}')
    return sc.load(path)


def test_http_step_and_its_expectation(tmp_path: Path) -> None:
    scenario = load(
        tmp_path,
        '[[steps]]\nhttp = { method = "POST", path = "/orders/1", body = "{}", headers = { X-A = "1" }, as = "one" }\n'
        '[[steps]]\nexpect = { invoke = "one", error_type = "HTTP 502", payload = "Internal" }\n',
    )
    http, expect = scenario.steps
    assert (http.action, http.function, http.key) == ("http", "app", "one")
    assert http.request == {"method": "POST", "path": "/orders/1", "body": "{}", "headers": {"X-A": "1"}}
    assert expect.expect is not None and expect.expect.invoke == "one"
    assert scenario.functions["app"].settings["routes"][0].route_key == "GET /orders/{id}"


@pytest.mark.parametrize(
    ("steps", "function", "problem"),
    [
        ('[[steps]]\nhttp = { path = "/x" }\n[[steps]]\nexpect = { log = "START" }\n', None, "not available for http"),
        ('[[steps]]\nhttp = { path = "x" }\n[[steps]]\nexpect = { ok = true }\n', None, "a path starting with /"),
        ('[[steps]]\nhttp = { path = "/x", method = "FETCH" }\n[[steps]]\nexpect = { ok = true }\n', None, "GET"),
        ('[[steps]]\nhttp = { path = "/x" }\n[[steps]]\nexpect = { ok = true }\n', 'routes = ["GET x"]', "routes"),
    ],
)
def test_http_step_problems(tmp_path: Path, steps: str, function: str | None, problem: str) -> None:
    with pytest.raises(sc.ScenarioError) as raised:
        load(tmp_path, steps, *([function] if function else []))
    assert problem in raised.value.message

"""The HTTP API sample through the front door, against the real PostgreSQL server: the broken variant fails on the
first request after the environment was frozen past the server's idle timeout, the fixed one does not."""

from __future__ import annotations

from pathlib import Path

import pytest
import requests

from emulator.config.sam import functions_from_template

pytestmark = pytest.mark.timeout(120)

SAMPLE = Path(__file__).parent.parent / "samples/python/http_api"
RUNS = 3


def test_template_routes_the_http_api() -> None:
    (function,) = functions_from_template(SAMPLE / "template.yaml")
    assert [(r.kind, r.method, r.path, r.payload_version) for r in function.routes] == [
        ("http", "GET", "/orders/{id}", "2.0")
    ]
    assert function.code_dir == (SAMPLE / "broken").resolve()


def test_broken_fails_after_the_idle_timeout(lambda_freeze, lambda_freeze_postgres) -> None:
    db = lambda_freeze_postgres(idle_session_timeout_s=0.5)
    for _ in range(RUNS):
        fn = lambda_freeze.function(SAMPLE / "broken", env=db.env(), routes=["GET /orders/{id}"], timeout_s=10)
        first = requests.get(fn.http + "/orders/1", timeout=30)
        assert (first.status_code, first.json()["order"]) == (200, "1")
        fn.stay_frozen(1.0)  # the server closes the idle session meanwhile
        second = requests.get(fn.http + "/orders/2", timeout=30)
        assert (second.status_code, second.json()) == (500, {"message": "Internal Server Error"})
        assert any("ConnectionDoesNotExistError" in line for line in fn.logs)
        fn.stop()


def test_fixed_survives_the_idle_timeout(lambda_freeze, lambda_freeze_postgres) -> None:
    db = lambda_freeze_postgres(idle_session_timeout_s=0.5)
    for _ in range(RUNS):
        fn = lambda_freeze.function(SAMPLE / "fixed", env=db.env(), routes=["GET /orders/{id}"], timeout_s=10)
        first = requests.get(fn.http + "/orders/1", timeout=30)
        assert first.status_code == 200
        fn.stay_frozen(1.0)
        second = requests.get(fn.http + "/orders/2", timeout=30)
        assert second.status_code == 200, second.text
        assert second.json()["backend_pid"] != first.json()["backend_pid"]  # a fresh session replaced it
        fn.stop()

"""What no route matches: a 404 in its API family's error shape for every method; relative redirects."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest

from lmdeck.app.assembly import build_gateway
from lmdeck.app.factory import create_app
from lmdeck.app.unmatched import family
from lmdeck.settings import Settings
from lmdeck.testing.in_process import in_process_client
from lmdeck.tracing.memory import MemoryTraceSink

KEY = "sk-lmdeck-unmatched-Jt3Xc8Lq5Wn2Rv9Hm6Kb1Zp4Gf7Ds0Q"
METHODS = ["GET", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "TRACE", "PROPFIND"]


@pytest.fixture
async def http(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[httpx.AsyncClient]:
    monkeypatch.setenv("LMDECK_TEST_UNMATCHED_KEY", KEY)
    settings = Settings.model_validate(
        {"data_dir": str(tmp_path), "default_routes": False, "admin_key": {"$env": "LMDECK_TEST_UNMATCHED_KEY"}}
    )
    app = create_app(settings, gateway=build_gateway(settings, sink=MemoryTraceSink(), announce_admin_key=False))
    async with in_process_client(app) as client:
        client.headers["authorization"] = f"Bearer {KEY}"
        yield client


@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize(
    "path",
    ["/v1/nothing", "/v1/nothing/org/name", "/v1", "/v1/chat/completions/x"],
)
async def test_unknown_v1_paths_answer_like_openai(http: httpx.AsyncClient, method: str, path: str) -> None:
    response = await http.request(method, path)
    assert response.status_code == 404, response.text
    error = response.json()["error"]
    assert error["type"] == "invalid_request_error" and error["code"] == "unknown_url"
    assert error["message"].startswith(f"Invalid URL ({method} {path})")


@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize(
    "path",
    [
        "/api/nothing",
        "/api/keys/a/b",
        "/api/registry/models/org/name/versions/1/x",
        "/api",
        "/api/keys/a%2Fb/c",
        "/api/releases/r/shadow/x",
        "/api/sessions/s/x",
        "/api/traces/t/tree/x",
        "/api/alerts/a/b/c",
        "/api/flags/f/x",
        "/api/annotation-queues/q/x",
        "/api/drift/nothing",
    ],
)
async def test_unknown_admin_paths_answer_in_the_admin_shape(http: httpx.AsyncClient, method: str, path: str) -> None:
    response = await http.request(method, path)
    assert response.status_code == 404, response.text
    error = response.json()["error"]
    assert error["type"] == "not_found_error" and error["code"] == "not_found"
    assert "admin API" in error["message"] and "/docs" in error["message"]


@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize("path", ["/", "/nothing", "/health/nothing/deeper", "/v1x"])
async def test_other_unknown_paths_get_a_json_404(http: httpx.AsyncClient, method: str, path: str) -> None:
    response = await http.request(method, path)
    assert response.status_code == 404
    assert response.headers["content-type"] == "application/json"
    assert response.json()["error"]["code"] == "not_found"


async def test_head_of_an_unknown_path_is_a_404_without_a_body(http: httpx.AsyncClient) -> None:
    response = await http.head("/api/nothing")
    assert response.status_code == 404 and response.content == b""


async def test_a_known_path_with_a_wrong_method_is_a_405_in_the_error_shape(http: httpx.AsyncClient) -> None:
    response = await http.delete("/v1/chat/completions")
    assert response.status_code == 405
    assert "POST" in response.headers["allow"] and "error" in response.json()


@pytest.mark.parametrize(
    ("path", "location"),
    [
        ("/api/keys/", "/api/keys"),
        ("/api/keys/?include_revoked=false", "/api/keys?include_revoked=false"),
        ("/health/live/", "/health/live"),
    ],
)
async def test_the_trailing_slash_redirect_is_relative(http: httpx.AsyncClient, path: str, location: str) -> None:
    """Regression: the location was built from the Host header, so a client could make it point anywhere."""
    response = await http.get(path, headers={"host": "evil.example"})
    assert response.status_code == 307
    assert response.headers["location"] == location


async def test_a_double_slash_never_becomes_a_host(http: httpx.AsyncClient) -> None:
    response = await http.get("//evil.example/")
    assert response.status_code == 404
    assert "location" not in response.headers


def test_families() -> None:
    assert [family(p) for p in ("/v1", "/v1/x", "/v1x", "/api", "/api/x", "/apix", "/")] == [
        "openai",
        "openai",
        "other",
        "admin",
        "admin",
        "other",
        "other",
    ]

"""Bad requests sent raw to a real ``lmdeck serve``: always a 4xx in OpenAI's error shape, never a 5xx."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from lmdeck.testing.servers import FakeUpstreamProcess, GatewayProcess

MAX_BODY = 8192  # the standard gateway's max_body_bytes


@pytest.fixture
def gw(standard_gateway: GatewayProcess) -> GatewayProcess:
    return standard_gateway


@pytest.fixture
def http(gw: GatewayProcess) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=gw.url, headers=gw.headers(), timeout=10) as client:
        yield client


def assert_openai_error(response: httpx.Response, status: int | None = None) -> dict[str, Any]:
    assert 400 <= response.status_code < 500, (response.status_code, response.text)
    if status is not None:
        assert response.status_code == status, response.text
    error = response.json()["error"]
    assert isinstance(error["message"], str) and error["message"]
    assert isinstance(error["type"], str)
    assert {"param", "code"} <= set(error)
    return dict(error)


RAW_BODIES = [
    b"",
    b"   ",
    b"{not json",
    b'{"model": "chat", "messages": [',
    b"[1, 2, 3]",
    b'"just a string"',
    b"null",
    b"\xff\xfe\x00garbage",
    b'{"model": "chat", "messages": [{"role": "user", "content": "x"}], "temperature": NaN}',
    b"[" * 1500 + b"]" * 1500,  # nested deeper than any parser should follow
]


@pytest.mark.parametrize("path", ["/v1/chat/completions", "/v1/completions", "/v1/embeddings"])
def test_unparseable_bodies(http: httpx.Client, path: str) -> None:
    for raw in RAW_BODIES:
        response = http.post(path, content=raw, headers={"content-type": "application/json"})
        error = assert_openai_error(response, 400)
        assert error["type"] == "invalid_request_error"


CHAT_CASES: list[tuple[dict[str, Any], str | None]] = [
    ({"messages": [{"role": "user", "content": "x"}]}, "model"),
    ({"model": 42, "messages": [{"role": "user", "content": "x"}]}, "model"),
    ({"model": "chat"}, "messages"),
    ({"model": "chat", "messages": "hello"}, "messages"),
    ({"model": "chat", "messages": []}, "messages"),
    ({"model": "chat", "messages": [{"role": "wizard", "content": "x"}]}, "messages"),
    ({"model": "chat", "messages": [{"content": "x"}]}, "messages"),
    ({"model": "chat", "messages": [{"role": "user", "content": 12}]}, "messages"),
    ({"model": "chat", "messages": [{"role": "user", "content": "x"}], "temperature": "hot"}, "temperature"),
    ({"model": "chat", "messages": [{"role": "user", "content": "x"}], "temperature": 9}, "temperature"),
    ({"model": "chat", "messages": [{"role": "user", "content": "x"}], "max_tokens": -1}, "max_tokens"),
    ({"model": "chat", "messages": [{"role": "user", "content": "x"}], "n": 0}, "n"),
    ({"model": "chat", "messages": [{"role": "user", "content": "x"}], "stream": "yes please"}, "stream"),
    ({"model": "chat", "messages": [{"role": "user", "content": "x"}], "tools": "all of them"}, "tools"),
    ({"model": "chat", "messages": [{"role": "user", "content": "x"}], "stream_options": 3}, "stream_options"),
]


@pytest.mark.parametrize(("body", "param"), CHAT_CASES)
def test_wrong_types_name_the_field(
    http: httpx.Client, fake_upstream: FakeUpstreamProcess, body: dict[str, Any], param: str
) -> None:
    error = assert_openai_error(http.post("/v1/chat/completions", json=body), 400)
    assert error["param"] is not None and error["param"].split(".")[0] == param
    assert fake_upstream.count() == 0


def test_wrong_types_on_the_other_endpoints(http: httpx.Client) -> None:
    assert_openai_error(http.post("/v1/completions", json={"model": "chat"}), 400)
    assert_openai_error(http.post("/v1/completions", json={"model": "chat", "prompt": {"a": 1}}), 400)
    assert_openai_error(http.post("/v1/embeddings", json={"model": "chat"}), 400)
    assert_openai_error(http.post("/v1/embeddings", json={"model": "chat", "input": 3.5}), 400)
    assert_openai_error(http.post("/v1/embeddings", json={"model": "chat", "input": "x", "dimensions": 0}), 400)


def test_oversized_bodies(http: httpx.Client) -> None:
    big = {"model": "chat", "messages": [{"role": "user", "content": "x" * (MAX_BODY * 2)}]}
    assert_openai_error(http.post("/v1/chat/completions", json=big), 413)

    def chunks() -> Iterator[bytes]:
        yield b'{"model": "chat", "messages": [{"role": "user", "content": "'
        for _ in range(MAX_BODY // 512 + 2):
            yield b"y" * 512
        yield b'"}]}'

    # No content-length: the limit is enforced while reading.
    assert_openai_error(http.post("/v1/chat/completions", content=chunks()), 413)


def test_wrong_model_method_and_path(http: httpx.Client) -> None:
    error = assert_openai_error(
        http.post("/v1/chat/completions", json={"model": "nope", "messages": [{"role": "user", "content": "x"}]}), 404
    )
    assert error["code"] == "model_not_found"
    assert_openai_error(http.get("/v1/chat/completions"), 405)
    assert_openai_error(http.post("/v1/nothing-here", json={}), 404)


def test_a_key_is_checked_before_the_body_is_trusted(gw: GatewayProcess) -> None:
    response = httpx.post(f"{gw.base_url}/chat/completions", content=b"{broken", timeout=10)
    assert 400 <= response.status_code < 500 and "error" in response.json()
    keyless = httpx.post(
        f"{gw.base_url}/chat/completions",
        json={"model": "chat", "messages": [{"role": "user", "content": "x"}]},
        timeout=10,
    )
    assert_openai_error(keyless, 401)


def test_the_gateway_survives_it_all(http: httpx.Client, gw: GatewayProcess) -> None:
    ok = http.post(
        "/v1/chat/completions", json={"model": "chat", "messages": [{"role": "user", "content": "still here"}]}
    )
    assert ok.status_code == 200 and ok.json()["choices"][0]["message"]["content"] == "still here"
    assert gw.alive()

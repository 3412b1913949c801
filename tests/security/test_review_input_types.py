"""Wrong JSON types on /v1 are refused by name, never coerced.

Pydantic's lax mode read ``"max_tokens": "5"`` as 5, ``"stream": "yes"`` as true and
``"max_completion_tokens": true`` as a one-token limit, so a client's type bug became a
different request. OpenAI's API refuses them; so does lmdeck, before any upstream is called
(the route's only target listens nowhere).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from lmdeck.app.assembly import build_gateway
from lmdeck.app.factory import create_app
from lmdeck.settings import Settings
from lmdeck.testing.in_process import in_process_client
from lmdeck.tracing.memory import MemoryTraceSink

ADMIN_ENV = "LMDECK_TEST_REVIEW_TYPES_ADMIN_KEY"
ADMIN_KEY = "sk-lmdeck-review-types-Qw7Zr2Kx9Bn4Tm6Hv1Lc8Pd3Gs5Yf0J"
AUTH = {"authorization": f"Bearer {ADMIN_KEY}"}
MESSAGES = [{"role": "user", "content": "hi"}]


@pytest.fixture
async def http(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[httpx.AsyncClient]:
    monkeypatch.setenv(ADMIN_ENV, ADMIN_KEY)
    settings = Settings.model_validate(
        {
            "data_dir": str(tmp_path),
            "default_routes": False,
            "admin_key": {"$env": ADMIN_ENV},
            "routes": [
                {"name": "chat", "targets": [{"provider": "openai", "model": "m", "base_url": "http://127.0.0.1:9/v1"}]}
            ],
        }
    )
    app = create_app(settings, gateway=build_gateway(settings, sink=MemoryTraceSink(), announce_admin_key=False))
    async with in_process_client(app) as client:
        yield client


@pytest.mark.parametrize(
    ("path", "fields", "param"),
    [
        ("/v1/chat/completions", {"max_tokens": "5"}, "max_tokens"),
        ("/v1/chat/completions", {"max_tokens": 5.0}, "max_tokens"),
        ("/v1/chat/completions", {"max_completion_tokens": True}, "max_completion_tokens"),
        ("/v1/chat/completions", {"stream": "yes"}, "stream"),
        ("/v1/chat/completions", {"stream": 1}, "stream"),
        ("/v1/chat/completions", {"temperature": "0.5"}, "temperature"),
        ("/v1/chat/completions", {"logprobs": "true"}, "logprobs"),
        ("/v1/chat/completions", {"stream_options": {"include_usage": "on"}}, "stream_options.include_usage"),
        ("/v1/chat/completions", {"messages": [{"role": "user", "content": {"text": "hi"}}]}, "messages.0.content"),
        ("/v1/completions", {"prompt": "hi", "echo": 1}, "echo"),
        ("/v1/embeddings", {"input": "hi", "dimensions": "8"}, "dimensions"),
    ],
)
async def test_a_wrong_type_is_a_400_naming_the_field(
    http: httpx.AsyncClient, path: str, fields: dict[str, Any], param: str
) -> None:
    body: dict[str, Any] = {"model": "chat"}
    if path == "/v1/chat/completions":
        body["messages"] = MESSAGES
    body.update(fields)
    answer = await http.post(path, json=body, headers=AUTH)
    assert answer.status_code == 400, answer.text
    error = answer.json()["error"]
    assert (error["param"], error["code"], error["type"]) == (param, "invalid_value", "invalid_request_error")
    assert error["message"].startswith(f"{param}: ")


async def test_a_union_field_names_the_field_not_a_member_type(http: httpx.AsyncClient) -> None:
    body = {"model": "chat", "prompt": [[1, 2]]}
    error = (await http.post("/v1/completions", json=body, headers=AUTH)).json()["error"]
    assert error["param"] == "prompt"
    assert "str" not in error["param"].split(".")


@pytest.mark.parametrize(
    ("path", "fields"),
    [
        ("/v1/chat/completions", {"messages": MESSAGES}),
        ("/v1/completions", {"prompt": "hi"}),
    ],
)
async def test_stream_options_on_a_request_that_does_not_stream_are_refused(
    http: httpx.AsyncClient, path: str, fields: dict[str, Any]
) -> None:
    """Regression: ``include_usage`` without ``stream`` was ignored; OpenAI refuses it."""
    body = {"model": "chat", **fields, "stream_options": {"include_usage": True}}
    error = (await http.post(path, json=body, headers=AUTH)).json()["error"]
    assert (error["param"], error["code"]) == ("stream_options", "invalid_value")
    assert "stream: true" in error["message"]


async def test_an_admin_api_validation_error_has_a_code(http: httpx.AsyncClient) -> None:
    """Regression: /api validation errors said ``code: null`` where /v1 says ``invalid_value``."""
    answer = await http.post("/api/teams", json={"name": "t", "colour": "red"}, headers=AUTH)
    assert answer.status_code == 400
    error = answer.json()["error"]
    assert (error["param"], error["code"]) == ("colour", "invalid_value")


async def test_a_key_written_inline_is_refused_with_the_reference_to_write(http: httpx.AsyncClient) -> None:
    """Regression: the answer said only "Input should be a valid dictionary"."""
    assert (await http.post("/api/registry/models", json={"name": "bot"}, headers=AUTH)).status_code == 201
    version = {"provider": "openai", "model": "m", "api_key": "sk-inline"}
    answer = await http.post("/api/registry/models/bot/versions", json=version, headers=AUTH)
    assert answer.status_code == 400
    error = answer.json()["error"]
    assert error["param"] == "api_key"
    assert '{"$env": "NAME"}' in error["message"] and "sk-inline" not in error["message"]


async def test_an_embeddings_request_past_2048_inputs_is_refused(http: httpx.AsyncClient) -> None:
    """Regression: 20,000 inputs on the local model ran for minutes and ended in a 504."""
    body = {"model": "chat", "input": ["hi"] * 2049}
    answer = await http.post("/v1/embeddings", json=body, headers=AUTH)
    assert answer.status_code == 400
    error = answer.json()["error"]
    assert error["param"] == "input" and "at most 2048 inputs" in error["message"]
    body["input"] = ["hi"] * 2048
    answer = await http.post("/v1/embeddings", json=body, headers=AUTH)
    assert answer.json()["error"]["param"] != "input"


async def test_a_bad_query_parameter_is_named_as_sent(http: httpx.AsyncClient) -> None:
    """Regression: the param read ``query.limit``."""
    error = (await http.get("/api/traces?limit=0", headers=AUTH)).json()["error"]
    assert (error["param"], error["code"]) == ("limit", "invalid_value")
    assert error["message"].startswith("limit: ")

"""Capabilities and eligibility through a real ``lmdeck serve``: the bundled demo model and the fake upstream."""

from __future__ import annotations

from typing import Any

import httpx
import openai
import pytest
from openai import OpenAI

from lmdeck.testing.servers import FakeUpstreamProcess, GatewayFactory, GatewayProcess, openai_target

USER = [{"role": "user", "content": "What is 2+3?"}]
TOOLS: list[Any] = [
    {
        "type": "function",
        "function": {"name": "add", "parameters": {"type": "object", "properties": {"a": {"type": "number"}}}},
    }
]


@pytest.fixture
def gw(gateway: GatewayFactory, fake_upstream: FakeUpstreamProcess) -> GatewayProcess:
    routes = [
        {"name": "gpt", "targets": [openai_target(fake_upstream, "m-gpt", max_retries=0)], "fallbacks": ["demo"]},
        {
            "name": "guarded",
            "targets": [openai_target(fake_upstream, "m-guarded", max_retries=0)],
            "fallbacks": ["backup"],
        },
        {"name": "backup", "targets": [openai_target(fake_upstream, "m-backup")]},
        {
            "name": "no-logprobs",
            "targets": [openai_target(fake_upstream, "m-plain", unsupported_params=["logprobs", "top_logprobs"])],
        },
    ]
    return gateway(routes, default_routes=True)


def client(gw: GatewayProcess, key: str | None = None) -> OpenAI:
    return OpenAI(base_url=gw.base_url, api_key=key or gw.admin_key, max_retries=0, timeout=30)


@pytest.mark.parametrize(
    ("fields", "param"),
    [
        ({"tools": TOOLS, "tool_choice": "required"}, "tools"),
        ({"tool_choice": "required"}, "tool_choice"),
        ({"response_format": {"type": "json_object"}}, "response_format"),
    ],
)
def test_the_demo_model_refuses_what_it_cannot_honour(gw: GatewayProcess, fields: dict[str, Any], param: str) -> None:
    """Regression: these came back 200 with the parameter silently ignored (plain text, no tool call)."""
    with pytest.raises(openai.BadRequestError) as raised:
        client(gw).chat.completions.create(model="demo", messages=USER, **fields)
    error = raised.value.body
    assert isinstance(error, dict)
    assert (error["param"], error["code"], error["type"]) == (param, "unsupported_parameter", "invalid_request_error")
    assert "'demo'" in error["message"]


def test_demo_completions_refuse_what_the_engine_lacks(gw: GatewayProcess) -> None:
    """``echo``, ``logprobs`` and streamed usage are honoured (tests/local/test_serve_e2e.py); ``suffix`` is not."""
    with pytest.raises(openai.BadRequestError) as raised:
        client(gw).completions.create(model="demo", prompt="2+3=", suffix="!", max_tokens=2)
    assert raised.value.param == "suffix"  # type: ignore[attr-defined]
    assert raised.value.code == "unsupported_parameter"


def test_embed_route_refuses_chat(gw: GatewayProcess) -> None:
    with pytest.raises(openai.BadRequestError) as raised:
        client(gw).chat.completions.create(model="embed", messages=USER)
    assert raised.value.code == "unsupported_endpoint"


def test_fallback_to_the_demo_model_never_drops_tools(gw: GatewayProcess, fake_upstream: FakeUpstreamProcess) -> None:
    """Regression: an upstream failure fell back to demo, which answered 200 plain text with no tool call."""
    fake_upstream.configure(script=[503])
    response = httpx.post(
        f"{gw.base_url}/chat/completions",
        headers={**gw.headers(), "x-request-id": "elig-tools"},
        json={"model": "gpt", "messages": USER, "tools": TOOLS},
        timeout=30,
    )
    assert response.status_code == 502, response.text
    trace = gw.trace("elig-tools")
    assert trace["metadata"]["skipped_targets"] == [
        {"route": "demo", "target": "local:demo", "reason": "unsupported_parameter", "param": "tools"}
    ]
    assert not trace["fallback_used"]


def test_a_target_may_refuse_what_its_server_lacks(gw: GatewayProcess, fake_upstream: FakeUpstreamProcess) -> None:
    with pytest.raises(openai.BadRequestError) as raised:
        client(gw).chat.completions.create(model="no-logprobs", messages=USER, logprobs=True)
    assert raised.value.param == "logprobs"  # type: ignore[attr-defined]
    assert fake_upstream.count() == 0
    assert client(gw).chat.completions.create(model="no-logprobs", messages=USER).choices[0].message.content


def new_key(gw: GatewayProcess, allowed: list[str]) -> str:
    response = httpx.post(
        f"{gw.url}/api/keys",
        headers=gw.headers(),
        json={"name": "limited", "role": "inference", "allowed_models": allowed},
        timeout=10,
    )
    response.raise_for_status()
    return str(response.json()["key"])


def test_a_fallback_the_key_may_not_use_never_serves(gw: GatewayProcess, fake_upstream: FakeUpstreamProcess) -> None:
    """Regression: a fallback served a route the key may not call."""
    limited = client(gw, new_key(gw, ["guarded"]))
    fake_upstream.configure(script=[503])
    with pytest.raises(openai.APIStatusError) as raised:
        limited.chat.completions.create(model="guarded", messages=USER)
    assert raised.value.status_code == 502
    assert [r["body"]["model"] for r in fake_upstream.requests()] == ["m-guarded"]
    with pytest.raises(openai.PermissionDeniedError):
        limited.chat.completions.create(model="backup", messages=USER)


def test_a_fallback_the_key_may_use_serves(gw: GatewayProcess, fake_upstream: FakeUpstreamProcess) -> None:
    allowed = client(gw, new_key(gw, ["guarded", "backup"]))
    fake_upstream.configure(script=[503])
    assert allowed.chat.completions.create(model="guarded", messages=USER).model == "m-backup"

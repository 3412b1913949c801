"""LoRA adapters on an OpenAI-compatible (vLLM) target, against the fake upstream and scripted transports."""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import AsyncIterator

import httpx
import pytest

from lmdeck.gateway.errors import upstream_to_api_error
from lmdeck.protocol import ChatCompletionRequest
from lmdeck.providers.anthropic import AnthropicProvider
from lmdeck.providers.base import ProviderContext, UpstreamError
from lmdeck.providers.openai import OpenAIProvider
from lmdeck.providers.openai_lora import default_lora_name
from lmdeck.providers.transport_httpx import HttpxTransport
from lmdeck.settings import ConfigError, Settings, TargetConfig
from lmdeck.testing import FakeConfig
from lmdeck.testing.fake_upstream import FakeUpstream

ADAPTER = "/adapters/support-v3"


def make(http: httpx.AsyncClient, **options: object) -> OpenAIProvider:
    config = TargetConfig.model_validate({"model": "base-model", "base_url": "http://fake/v1", "options": options})
    return OpenAIProvider(config, ProviderContext(settings=Settings(), transport=HttpxTransport(http)))


def chat(**extra: object) -> ChatCompletionRequest:
    return ChatCompletionRequest.model_validate(
        {"model": "route", "messages": [{"role": "user", "content": "hi"}], **extra}
    )


@pytest.fixture
async def fake() -> AsyncIterator[tuple[FakeUpstream, httpx.AsyncClient]]:
    app = FakeUpstream(FakeConfig(latency_ms=5))
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app)) as http:
        yield app, http


def loads(app: FakeUpstream) -> list[dict[str, object]]:
    return [r["body"] for r in app.state.requests if r["path"] == "/v1/load_lora_adapter"]


async def test_dynamic_loads_once_across_concurrent_requests(fake: tuple[FakeUpstream, httpx.AsyncClient]) -> None:
    app, http = fake
    provider = make(http, adapter=ADAPTER)
    name = default_lora_name(ADAPTER)
    assert name.startswith("lora-") and len(name) == 17
    await asyncio.gather(*(provider.chat(chat()) for _ in range(8)))
    [chunk async for chunk in provider.stream_chat(chat(stream=True))]
    assert loads(app) == [{"lora_name": name, "lora_path": ADAPTER}]
    assert app.state.loras == {name: ADAPTER}
    models = {r["body"]["model"] for r in app.state.requests if r["path"] == "/v1/chat/completions"}
    assert models == {name}


async def test_an_adapter_already_loaded_counts_as_loaded(fake: tuple[FakeUpstream, httpx.AsyncClient]) -> None:
    app, http = fake
    app.state.loras["mine"] = ADAPTER
    provider = make(http, adapter=ADAPTER, lora_name="mine")
    reply = await provider.chat(chat())
    assert reply.choices and len(loads(app)) == 1
    assert app.state.requests[-1]["body"]["model"] == "mine"


async def test_static_loads_nothing_and_names_the_adapter(fake: tuple[FakeUpstream, httpx.AsyncClient]) -> None:
    app, http = fake
    provider = make(http, adapter=ADAPTER, lora_name="support", adapter_loading="static")
    await provider.chat(chat())
    assert loads(app) == [] and app.state.requests[-1]["body"]["model"] == "support"


async def test_a_refused_load_is_an_error_naming_the_fix(fake: tuple[FakeUpstream, httpx.AsyncClient]) -> None:
    app, http = fake
    app.state.update({"lora_loading": False})
    provider = make(http, adapter=ADAPTER, lora_name="support")
    for _ in range(2):
        with pytest.raises(UpstreamError) as caught:
            await asyncio.wait_for(provider.chat(chat()), 30)
        assert caught.value.kind == "adapter_load_failed" and not caught.value.retryable
    assert len(loads(app)) == 2  # not remembered as loaded: a fixed server is tried again
    assert not [r for r in app.state.requests if r["path"] == "/v1/chat/completions"]
    error = upstream_to_api_error(caught.value)
    assert error.status == 502 and error.code == "adapter_load_failed"
    assert "--enable-lora" in error.message and "VLLM_ALLOW_RUNTIME_LORA_UPDATING=True" in error.message
    assert "--lora-modules support=/adapters/support-v3" in error.message and "Not Found" in error.message


async def test_a_restarted_server_gets_the_adapter_again() -> None:
    loaded: set[str] = set()
    load_calls = 0

    def handler(request: httpx.Request) -> httpx.Response:
        nonlocal load_calls
        body = json.loads(request.content)
        if request.url.path == "/v1/load_lora_adapter":
            load_calls += 1
            loaded.add(body["lora_name"])
            return httpx.Response(200, text="Success")
        if body["model"] not in loaded:
            message = f"The model `{body['model']}` does not exist."
            return httpx.Response(404, json={"error": {"message": message, "type": "NotFoundError", "code": 404}})
        answer = {"id": "c", "object": "chat.completion", "created": 0, "model": body["model"], "choices": []}
        return httpx.Response(200, json=answer)

    async with httpx.AsyncClient(transport=httpx.MockTransport(handler)) as http:
        provider = make(http, adapter=ADAPTER, lora_name="support")
        await provider.chat(chat())
        loaded.clear()  # vLLM restarted
        await provider.chat(chat())
        assert load_calls == 2
        with pytest.raises(UpstreamError) as caught:
            await make(http).chat(chat())  # a 404 about another model is not a forgotten adapter
        assert caught.value.status == 404


@pytest.mark.parametrize(
    ("options", "named"),
    [
        ({"adapter": ""}, "options.adapter"),
        ({"adapter": 3}, "options.adapter"),
        ({"adapter": ADAPTER, "adapter_loading": "eager"}, "options.adapter_loading"),
        ({"adapter": ADAPTER, "lora_name": ""}, "options.lora_name"),
        ({"lora_name": "x"}, "options.lora_name"),
    ],
)
def test_bad_adapter_options_are_refused_at_build(options: dict[str, object], named: str) -> None:
    with pytest.raises(ConfigError, match=re.escape(named)):
        make(httpx.AsyncClient(), **options)


def test_providers_without_adapters_refuse_the_option() -> None:
    target = TargetConfig.model_validate({"provider": "anthropic", "model": "claude", "options": {"adapter": ADAPTER}})
    ctx = ProviderContext(settings=Settings(), transport=HttpxTransport(httpx.AsyncClient()))
    with pytest.raises(ConfigError, match=r"options\.adapter"):
        AnthropicProvider(target, ctx)

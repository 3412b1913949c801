"""Capabilities: each provider declares what it honours; anything else in use is refused by name."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from lmdeck.protocol import ChatCompletionRequest, CompletionRequest, EmbeddingRequest
from lmdeck.providers.anthropic import AnthropicProvider
from lmdeck.providers.base import ProviderContext
from lmdeck.providers.capabilities import FORWARDS_ALL, Capabilities, Refusal, capabilities_of
from lmdeck.providers.local import CAPABILITIES as LOCAL
from lmdeck.providers.local import LocalProvider
from lmdeck.providers.openai import OpenAIProvider
from lmdeck.providers.transport_httpx import HttpxTransport
from lmdeck.settings import Settings, TargetConfig

USER = [{"role": "user", "content": "hi"}]
TOOLS = [{"type": "function", "function": {"name": "add", "parameters": {"type": "object"}}}]


def chat(**fields: Any) -> ChatCompletionRequest:
    return ChatCompletionRequest.model_validate({"model": "m", "messages": USER, **fields})


def completion(**fields: Any) -> CompletionRequest:
    return CompletionRequest.model_validate({"model": "m", "prompt": "1+1=", **fields})


@pytest.fixture
async def ctx() -> AsyncIterator[ProviderContext]:
    async with httpx.AsyncClient() as http:
        yield ProviderContext(settings=Settings(), transport=HttpxTransport(http))


def test_capabilities_refuse_the_first_parameter_not_honoured() -> None:
    caps = Capabilities({"chat": frozenset({"temperature"})})
    assert caps.refusal(chat(temperature=0.1)) is None
    assert caps.refusal(chat(temperature=0.1, logprobs=True)) == Refusal("chat", "logprobs")
    assert caps.refusal(completion()) == Refusal("completions")
    assert Refusal("chat", "logprobs").code == "unsupported_parameter"
    assert Refusal("chat").code == "unsupported_endpoint"


def test_refusing_narrows_even_what_is_forwarded() -> None:
    caps = FORWARDS_ALL.refusing(["logprobs", "stream_options"])
    assert caps.refusal(chat(logprobs=True)) == Refusal("chat", "logprobs")
    assert caps.refusal(chat(stream=True, stream_options={"include_usage": True})) == Refusal(
        "chat", "stream_options.include_usage"
    )
    assert caps.refusal(chat(top_logprobs=0, seed=3)) is None
    assert FORWARDS_ALL.refusing([]) is FORWARDS_ALL


def test_a_provider_that_declares_nothing_forwards_everything() -> None:
    class OldPlugin:
        pass

    assert capabilities_of(OldPlugin()) is FORWARDS_ALL


async def test_openai_compatible_upstreams_receive_every_parameter(ctx: ProviderContext) -> None:
    provider = OpenAIProvider(TargetConfig(model="gpt-4o"), ctx)
    caps = capabilities_of(provider)
    for body in (
        chat(logprobs=True, tools=TOOLS, brand_new=1),
        completion(echo=True),
        EmbeddingRequest(model="m", input="x"),
    ):
        assert caps.refusal(body) is None


async def test_anthropic_refuses_what_it_does_not_translate(ctx: ProviderContext) -> None:
    provider = AnthropicProvider(TargetConfig(provider="anthropic", model="claude"), ctx)
    caps = capabilities_of(provider)
    assert caps.refusal(chat(tools=TOOLS, tool_choice="required", temperature=0.5, max_tokens=9)) is None
    assert caps.refusal(chat(response_format={"type": "json_object"})) is None  # answered through a forced tool
    for field, value in [("logprobs", True), ("n", 2), ("presence_penalty", 0.5), ("seed", 1)]:
        assert caps.refusal(chat(**{field: value})) == Refusal("chat", field)
    assert caps.refusal(completion()) == Refusal("completions")
    assert caps.refusal(EmbeddingRequest(model="m", input="x")) == Refusal("embeddings")


@pytest.mark.parametrize(
    ("body", "param"),
    [
        (chat(tools=TOOLS), "tools"),
        (chat(tool_choice="required"), "tool_choice"),
        (chat(response_format={"type": "json_object"}), "response_format"),
        (chat(presence_penalty=1.0), "presence_penalty"),
        (completion(suffix="end"), "suffix"),
        (completion(best_of=3), "best_of"),
    ],
)
def test_local_generative_models_refuse_by_name_what_they_do_not_implement(body: Any, param: str) -> None:
    refusal = LOCAL["generate"].refusal(body)
    assert refusal is not None and refusal.param == param


def test_local_generative_models_honour_their_sampling_parameters() -> None:
    body = chat(max_tokens=5, temperature=0.2, top_p=0.9, n=2, stop=["\n"], seed=1)
    assert LOCAL["generate"].refusal(body) is None
    assert LOCAL["generate"].refusal(chat(stream=True, stream_options={"include_usage": True})) is None
    assert LOCAL["generate"].refusal(chat(logprobs=True, top_logprobs=3)) is None
    honoured = completion(echo=True, logprobs=2, n=2, stream=True, stream_options={"include_usage": True})
    assert LOCAL["generate"].refusal(honoured) is None
    assert LOCAL["generate"].refusal(EmbeddingRequest(model="m", input="x")) == Refusal("embeddings")
    assert LOCAL["embed"].refusal(EmbeddingRequest(model="m", input="x", encoding_format="base64")) is None
    assert LOCAL["embed"].refusal(chat()) == Refusal("chat")


async def test_a_local_target_declares_by_its_models_task(tmp_path: Path) -> None:
    from lmdeck.local.random_model import write_random_model

    write_random_model(tmp_path / "tiny")
    settings = Settings.model_validate({"local": {"model_dir": str(tmp_path)}})
    async with httpx.AsyncClient() as http:
        ctx = ProviderContext(settings=settings, transport=HttpxTransport(http))
        provider = LocalProvider(TargetConfig(provider="local", model="tiny"), ctx)
        try:
            assert capabilities_of(provider) is LOCAL["generate"]
        finally:
            await provider.aclose()


def documented() -> dict[tuple[str, str], set[str]]:
    """``(target, endpoint) -> parameters`` from the table in docs/capabilities.md."""
    text = (Path(__file__).parents[2] / "docs" / "capabilities.md").read_text()
    rows: dict[tuple[str, str], set[str]] = {}
    for line in text.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) == 3 and cells[0].startswith("`") and cells[1] in ("chat", "completions", "embeddings"):
            target = cells[0].split("`")[1] + (" embed" if "embedding" in cells[0] else "")
            rows[(target, cells[1])] = set(re.findall(r"`([^`]+)`", cells[2]))
    return rows


def test_the_documented_table_is_what_providers_declare() -> None:
    from lmdeck.providers.anthropic.provider import CAPABILITIES as ANTHROPIC

    declared = {
        ("local", "chat"): LOCAL["generate"].params["chat"],
        ("local", "completions"): LOCAL["generate"].params["completions"],
        ("local embed", "embeddings"): LOCAL["embed"].params["embeddings"],
        ("anthropic", "chat"): ANTHROPIC.params["chat"],
    }
    table = documented()
    for row, params in declared.items():
        assert table.get(row) == set(params or ()), (
            f"docs/capabilities.md, row {row}: update it to {sorted(params or ())}"
        )

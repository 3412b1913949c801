"""Refusals of the bundled local models reach the client as what they are, not as an upstream's rejection."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
import torch

from lmdeck.gateway.errors import upstream_to_api_error
from lmdeck.local.random_model import write_random_model
from lmdeck.protocol import ChatCompletionRequest, EmbeddingRequest
from lmdeck.providers.base import ProviderContext, UpstreamError
from lmdeck.providers.local import LocalProvider
from lmdeck.providers.transport_httpx import HttpxTransport
from lmdeck.settings import Settings, TargetConfig


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    torch.set_num_threads(1)
    root = tmp_path_factory.mktemp("local-models")
    write_random_model(root / "tiny")
    return root


@pytest.fixture
async def tiny(model_dir: Path) -> AsyncIterator[LocalProvider]:
    settings = Settings.model_validate({"local": {"model_dir": str(model_dir), "max_batch_size": 2}})
    async with httpx.AsyncClient() as http:
        provider = LocalProvider(
            TargetConfig(provider="local", model="tiny"), ProviderContext(settings, HttpxTransport(http))
        )
        yield provider
        await provider.aclose()


def chat(content: str, **fields: object) -> ChatCompletionRequest:
    return ChatCompletionRequest.model_validate(
        {"model": "tiny", "messages": [{"role": "user", "content": content}], **fields}
    )


async def test_a_prompt_too_long_is_a_context_length_error(tiny: LocalProvider) -> None:
    """Regression: it reached the client as 400 ``upstream_rejected``."""
    with pytest.raises(UpstreamError) as raised:
        await tiny.chat(chat("x" * 5000, max_tokens=1))
    err = upstream_to_api_error(raised.value)
    assert (err.status, err.code, err.type) == (400, "context_length_exceeded", "invalid_request_error")
    assert "shorten the prompt" in err.message


async def test_value_refusals_name_their_parameter(tiny: LocalProvider) -> None:
    with pytest.raises(UpstreamError) as raised:
        async for _ in tiny.stream_chat(chat("hi", n=2, stream=True)):
            pass
    err = upstream_to_api_error(raised.value)
    assert (err.status, err.param, err.code) == (400, "n", "invalid_value")


async def test_no_local_refusal_is_labelled_an_upstream_rejection(tiny: LocalProvider) -> None:
    failures: list[UpstreamError] = []
    for call in (
        tiny.chat(chat("x" * 5000, max_tokens=1)),
        tiny.embeddings(EmbeddingRequest(model="tiny", input="x")),
    ):
        try:
            await call
        except UpstreamError as exc:
            failures.append(exc)
    assert len(failures) == 2
    assert all(upstream_to_api_error(f).code != "upstream_rejected" for f in failures)


@pytest.mark.parametrize("stream", [False, True])
async def test_a_part_that_is_not_text_is_refused_by_name(tiny: LocalProvider, stream: bool) -> None:
    """Regression: an image part was dropped and the model answered the text around it."""
    content = [{"type": "text", "text": "what is this?"}, {"type": "image_url", "image_url": {"url": "data:,"}}]
    request = ChatCompletionRequest.model_validate(
        {"model": "tiny", "messages": [{"role": "user", "content": content}], "stream": stream}
    )
    with pytest.raises(UpstreamError) as raised:
        if stream:
            async for _ in tiny.stream_chat(request):
                pass
        else:
            await tiny.chat(request)
    err = upstream_to_api_error(raised.value)
    assert (err.status, err.param, err.code) == (400, "messages.0.content.1", "unsupported_content")
    assert "'image_url'" in err.message


async def test_the_lmdeck_key_is_an_unknown_parameter_not_a_silent_extension(tiny: LocalProvider) -> None:
    """Regression: a body's ``lmdeck`` field was dropped on every target, though nothing reads it."""
    with pytest.raises(UpstreamError) as raised:
        await tiny.chat(chat("hi", lmdeck={"cache": False}))
    err = upstream_to_api_error(raised.value)
    assert (err.status, err.param, err.code) == (400, "lmdeck", "unsupported_parameter")

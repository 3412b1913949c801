"""The local provider: OpenAI shapes, streaming, cancellation, errors, embeddings."""

from __future__ import annotations

import asyncio
import base64
import struct

import pytest

from lmdeck.protocol import ChatCompletionRequest, CompletionRequest, EmbeddingRequest
from lmdeck.providers.base import ProviderContext, UnsupportedOperation, UpstreamError
from lmdeck.providers.local import LocalProvider
from lmdeck.settings import ConfigError, TargetConfig

USER = [{"role": "user", "content": "Reverse: abc"}]


def chat(**extra: object) -> ChatCompletionRequest:
    return ChatCompletionRequest.model_validate({"model": "route", "messages": USER, **extra})


async def test_chat_answers_in_openai_shape_with_usage(tiny: LocalProvider) -> None:
    response = await tiny.chat(chat(max_tokens=5, temperature=0))
    engine = await tiny.runtime.engine("tiny")
    prompt = engine.lm.encode(engine.lm.template.render(USER))
    assert response.object == "chat.completion"
    assert response.id.startswith("chatcmpl-")
    [choice] = response.choices
    assert choice.message["role"] == "assistant"
    assert isinstance(choice.message["content"], str)
    assert choice.finish_reason == "length"
    assert response.usage is not None
    assert (response.usage.prompt_tokens, response.usage.completion_tokens) == (len(prompt), 5)
    assert response.usage.total_tokens == len(prompt) + 5


async def test_stream_gives_the_same_text_as_a_whole_answer(tiny: LocalProvider) -> None:
    whole = await tiny.chat(chat(max_tokens=12, temperature=0))
    chunks = [
        c
        async for c in tiny.stream_chat(
            chat(max_tokens=12, temperature=0, stream=True, stream_options={"include_usage": True})
        )
    ]
    assert chunks[0].choices[0]["delta"] == {"role": "assistant", "content": ""}
    text = "".join(c.choices[0]["delta"].get("content", "") for c in chunks if c.choices)
    assert text == whole.choices[0].message["content"]
    assert [c.choices[0]["finish_reason"] for c in chunks if c.choices][-1] == "length"
    assert chunks[-1].choices == []
    assert chunks[-1].usage is not None and chunks[-1].usage.completion_tokens == 12
    assert len({c.id for c in chunks}) == 1


async def test_closing_the_stream_early_frees_the_batch_row(tiny: LocalProvider) -> None:
    stream = tiny.stream_chat(chat(max_tokens=200, temperature=0))
    await anext(stream)
    await anext(stream)
    engine = await tiny.runtime.engine("tiny")
    assert engine.stats.running == 1
    await stream.aclose()  # what the gateway does when the client goes away
    assert await _eventually(lambda: engine.stats.running == 0 and engine.stats.cancelled == 1)


async def _eventually(check: object, timeout: float = 60.0) -> bool:
    """Poll ``check`` until it holds or ``timeout`` seconds (generous: a loaded machine only waits longer)."""
    import asyncio
    import time

    assert callable(check)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return True
        await asyncio.sleep(0.01)
    return bool(check())


async def test_n_choices_with_a_seed_are_reproducible(tiny: LocalProvider) -> None:
    first = await tiny.chat(chat(max_tokens=8, n=3, seed=5, temperature=1.0))
    again = await tiny.chat(chat(max_tokens=8, n=3, seed=5, temperature=1.0))
    texts = [c.message["content"] for c in first.choices]
    assert [c.index for c in first.choices] == [0, 1, 2]
    assert texts == [c.message["content"] for c in again.choices]
    assert len(set(texts)) > 1  # each choice has its own seed


async def test_completions_take_a_list_of_prompts(tiny: LocalProvider) -> None:
    request = CompletionRequest.model_validate(
        {"model": "r", "prompt": ["abc", "xyz"], "max_tokens": 4, "temperature": 0}
    )
    response = await tiny.completions(request)
    assert [c["index"] for c in response.choices] == [0, 1]
    assert all(c["finish_reason"] == "length" for c in response.choices)
    assert response.usage is not None and response.usage.completion_tokens == 8
    streamed = [
        c
        async for c in tiny.stream_completions(CompletionRequest(model="r", prompt="abc", max_tokens=4, temperature=0))
    ]
    assert "".join(c.choices[0]["text"] for c in streamed if c.choices) == response.choices[0]["text"]


@pytest.mark.parametrize(
    "call",
    [
        lambda p: p.stream_chat(chat(n=2, stream=True)).__anext__(),
        lambda p: p.stream_completions(CompletionRequest(model="r", prompt=["a", "b"], stream=True)).__anext__(),
        lambda p: p.chat(chat(messages=[{"role": "user", "content": "x" * 400}])),
    ],
    ids=["stream-n", "stream-prompt-list", "prompt-too-long"],
)
async def test_bad_requests_are_400(tiny: LocalProvider, call: object) -> None:
    assert callable(call)
    with pytest.raises(UpstreamError) as info:
        await call(tiny)
    assert info.value.status == 400
    assert not info.value.retryable


async def test_a_full_queue_is_a_429_queue_full(ctx: ProviderContext) -> None:
    ctx.settings.local.max_batch_size = 1
    ctx.settings.local.max_queue = 1
    provider = LocalProvider(TargetConfig(provider="local", model="tiny"), ctx)
    try:
        engine = await provider.runtime.engine("tiny")
        engine.pause()
        waiting = provider.stream_chat(chat(max_tokens=2))
        # A stream's first chunk waits for a row, so a request refused while it waits still gets its status.
        first = asyncio.ensure_future(anext(waiting))
        assert await _eventually(lambda: engine.stats.waiting == 1)
        assert not first.done()
        with pytest.raises(UpstreamError) as info:
            await provider.chat(chat(max_tokens=2))
        assert (info.value.status, info.value.kind, info.value.retryable) == (429, "queue_full", False)
        engine.resume()
        assert (await first).choices[0]["delta"]["role"] == "assistant"
        await waiting.aclose()
    finally:
        await provider.aclose()


async def test_a_request_larger_than_the_whole_queue_is_a_400(ctx: ProviderContext) -> None:
    """Regression: 2,000 prompts with n=128 was a 503 "retry shortly" that no retry could satisfy."""
    ctx.settings.local.max_batch_size = 1
    ctx.settings.local.max_queue = 2
    provider = LocalProvider(TargetConfig(provider="local", model="tiny"), ctx)
    try:
        with pytest.raises(UpstreamError) as info:
            await provider.completions(CompletionRequest(model="tiny", prompt=["a", "b"], n=2, max_tokens=1))
        assert (info.value.status, info.value.retryable) == (400, False)
        assert info.value.body is not None and info.value.body["error"]["param"] == "n"
        assert "at most 3 at once" in info.value.body["error"]["message"]
        answer = await provider.completions(CompletionRequest(model="tiny", prompt=["a", "b", "c"], max_tokens=1))
        assert len(answer.choices) == 3
    finally:
        await provider.aclose()


async def test_embeddings_float_and_base64(ctx: ProviderContext) -> None:
    embed = LocalProvider(TargetConfig(provider="local", model="all-minilm-l6-v2"), ctx)
    try:
        floats = await embed.embeddings(EmbeddingRequest(model="e", input=["one", "two"]))
        packed = await embed.embeddings(EmbeddingRequest(model="e", input=["one", "two"], encoding_format="base64"))
        assert [d.index for d in floats.data] == [0, 1]
        assert floats.usage is not None and floats.usage.prompt_tokens == floats.usage.total_tokens > 0
        for plain, encoded in zip(floats.data, packed.data, strict=True):
            assert isinstance(encoded.embedding, str)
            decoded = struct.unpack("<384f", base64.b64decode(encoded.embedding))
            assert list(decoded) == pytest.approx(plain.embedding, abs=1e-6)
        for bad in (
            EmbeddingRequest(model="e", input=[1, 2, 3]),
            EmbeddingRequest(model="e", input="x", dimensions=64),
        ):
            with pytest.raises(UpstreamError) as info:
                await embed.embeddings(bad)
            assert info.value.status == 400
        with pytest.raises(UnsupportedOperation):
            await embed.chat(chat())
    finally:
        await embed.aclose()


async def test_wrong_operation_or_configuration_is_refused(tiny: LocalProvider, ctx: ProviderContext) -> None:
    with pytest.raises(UnsupportedOperation):
        await tiny.embeddings(EmbeddingRequest(model="e", input="x"))
    with pytest.raises(ConfigError, match="no local model 'nope'"):
        LocalProvider(TargetConfig(provider="local", model="nope"), ctx)
    with pytest.raises(ConfigError, match=r"options\.quantize"):
        LocalProvider(TargetConfig(provider="local", model="tiny", options={"quantize": "int4"}), ctx)


async def test_int8_targets_share_nothing_with_float_ones(ctx: ProviderContext) -> None:
    plain = LocalProvider(TargetConfig(provider="local", model="tiny"), ctx)
    quantized = LocalProvider(TargetConfig(provider="local", model="tiny", options={"quantize": "int8"}), ctx)
    try:
        response = await quantized.chat(chat(max_tokens=4, temperature=0))
        assert response.usage is not None and response.usage.completion_tokens == 4
        assert await quantized.runtime.engine("tiny", "int8") is not await plain.runtime.engine("tiny")
        assert quantized.runtime is plain.runtime
    finally:
        await plain.aclose()
        await quantized.aclose()
    assert plain.runtime.loaded_engine("tiny") is None  # the last provider closed: engines stopped


def test_registering_the_provider_does_not_import_torch() -> None:
    # Every gateway loads every provider hook at start-up; PyTorch takes seconds to import.
    import subprocess
    import sys

    code = "import sys, lmdeck.providers.local as m; m.register(m.ProviderRegistry()); print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


async def test_targets_of_one_context_share_its_local_runtime(tiny: LocalProvider, ctx: ProviderContext) -> None:
    assert ctx.local_runtime is tiny.runtime
    other = LocalProvider(TargetConfig(provider="local", model="tiny", options={"quantize": "int8"}), ctx)
    try:
        assert other.runtime is ctx.local_runtime
    finally:
        await other.aclose()

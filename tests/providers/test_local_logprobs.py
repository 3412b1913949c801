"""The local provider's logprobs, echo, streamed usage and declared parameters, in OpenAI's shapes."""

from __future__ import annotations

import math
from typing import Any

import pytest

from lmdeck.protocol import ChatCompletionRequest, CompletionRequest
from lmdeck.providers.base import UpstreamError
from lmdeck.providers.local import LocalProvider

USER = [{"role": "user", "content": "Reverse: abc"}]


def refused_param(error: UpstreamError) -> str | None:
    """The ``param`` of the OpenAI-shaped error body the gateway passes on."""
    assert error.body is not None
    param: str | None = error.body["error"]["param"]
    return param


def chat(**extra: object) -> ChatCompletionRequest:
    return ChatCompletionRequest.model_validate({"model": "route", "messages": USER, **extra})


def completion(**extra: object) -> CompletionRequest:
    return CompletionRequest.model_validate({"model": "route", "prompt": "Reverse: abc", **extra})


async def test_chat_logprobs_in_openai_shape(tiny: LocalProvider) -> None:
    response = await tiny.chat(chat(max_tokens=6, temperature=0, logprobs=True, top_logprobs=3))
    [choice] = response.choices
    assert choice.logprobs is not None and choice.logprobs["refusal"] is None
    content = choice.logprobs["content"]
    assert len(content) == 6
    # Special tokens (the random model makes some) are named but add no text.
    assert "".join(item["token"] for item in content if not item["token"].startswith("<|")) == choice.message["content"]
    for item in content:
        assert set(item) == {"token", "logprob", "bytes", "top_logprobs"}
        assert bytes(item["bytes"]).decode() == item["token"]
        assert item["logprob"] <= 0 and math.isfinite(item["logprob"])
        assert len(item["top_logprobs"]) == 3
        values = [alt["logprob"] for alt in item["top_logprobs"]]
        assert values == sorted(values, reverse=True)
        # Greedy: the chosen token is the most likely one.
        assert item["top_logprobs"][0]["token"] == item["token"]
        assert item["top_logprobs"][0]["logprob"] == pytest.approx(item["logprob"])


async def test_chat_without_logprobs_has_none(tiny: LocalProvider) -> None:
    response = await tiny.chat(chat(max_tokens=3))
    assert response.choices[0].logprobs is None
    with_zero = await tiny.chat(chat(max_tokens=3, logprobs=True))
    assert all(item["top_logprobs"] == [] for item in with_zero.choices[0].logprobs["content"])  # type: ignore[index]


async def test_streamed_chat_logprobs_match_the_whole_answer(tiny: LocalProvider) -> None:
    whole = await tiny.chat(chat(max_tokens=8, temperature=0, logprobs=True, top_logprobs=2))
    chunks = [c async for c in tiny.stream_chat(chat(max_tokens=8, temperature=0, logprobs=True, top_logprobs=2))]
    streamed = [
        item for c in chunks for choice in c.choices for item in (choice.get("logprobs") or {}).get("content", [])
    ]
    assert whole.choices[0].logprobs is not None
    expected = whole.choices[0].logprobs["content"]
    assert [item["token"] for item in streamed] == [item["token"] for item in expected]
    assert [item["logprob"] for item in streamed] == pytest.approx([item["logprob"] for item in expected], abs=1e-5)


async def test_top_logprobs_needs_logprobs(tiny: LocalProvider) -> None:
    for bad, param in ((chat(top_logprobs=2), "top_logprobs"), (chat(logprobs=True, top_logprobs=21), "top_logprobs")):
        with pytest.raises(UpstreamError) as info:
            await tiny.chat(bad)
        assert (info.value.status, refused_param(info.value)) == (400, param)


async def test_completion_logprobs_with_echo_score_the_prompt(tiny: LocalProvider) -> None:
    prompt = "Reverse: abc"
    response = await tiny.completions(completion(max_tokens=4, temperature=0, logprobs=2, echo=True))
    [choice] = response.choices
    assert choice["text"].startswith(prompt) and len(choice["text"]) > len(prompt)
    logprobs = choice["logprobs"]
    assert set(logprobs) == {"tokens", "token_logprobs", "top_logprobs", "text_offset"}
    n = len(prompt) + 4  # the demo vocabulary has one token per character
    assert [len(logprobs[k]) for k in logprobs] == [n] * 4
    assert logprobs["tokens"][: len(prompt)] == list(prompt)
    assert logprobs["text_offset"][: len(prompt)] == list(range(len(prompt)))
    # Nothing predicts the first token: null, as OpenAI answers.
    assert logprobs["token_logprobs"][0] is None and logprobs["top_logprobs"][0] is None
    for lp, top, token in zip(
        logprobs["token_logprobs"][1:], logprobs["top_logprobs"][1:], logprobs["tokens"][1:], strict=True
    ):
        assert lp <= 0
        assert top[token] == pytest.approx(lp)  # the chosen token is always listed
        assert 2 <= len(top) <= 3


async def test_completion_offsets_count_from_the_prompt_start_without_echo(tiny: LocalProvider) -> None:
    response = await tiny.completions(completion(max_tokens=3, temperature=0, logprobs=0))
    logprobs = response.choices[0]["logprobs"]
    assert response.choices[0]["text"] == "".join(logprobs["tokens"])
    assert logprobs["text_offset"][0] == len("Reverse: abc")
    assert all(len(top) == 1 for top in logprobs["top_logprobs"])


async def test_echo_without_logprobs_returns_the_prompt(tiny: LocalProvider) -> None:
    plain = await tiny.completions(completion(max_tokens=3, temperature=0))
    echoed = await tiny.completions(completion(max_tokens=3, temperature=0, echo=True))
    assert echoed.choices[0]["text"] == "Reverse: abc" + plain.choices[0]["text"]
    assert echoed.choices[0]["logprobs"] is None


async def test_max_tokens_zero_with_echo_scores_the_prompt_only(tiny: LocalProvider) -> None:
    response = await tiny.completions(completion(max_tokens=0, echo=True, logprobs=1))
    [choice] = response.choices
    assert (choice["text"], choice["finish_reason"]) == ("Reverse: abc", "length")
    assert len(choice["logprobs"]["token_logprobs"]) == len("Reverse: abc")
    assert response.usage is not None and response.usage.completion_tokens == 0
    with pytest.raises(UpstreamError) as info:
        await tiny.completions(completion(max_tokens=0))
    assert refused_param(info.value) == "max_tokens"


async def test_completions_honour_n(tiny: LocalProvider) -> None:
    response = await tiny.completions(completion(prompt=["a", "b"], n=2, max_tokens=3, seed=1, temperature=1.0))
    assert [c["index"] for c in response.choices] == [0, 1, 2, 3]
    assert response.usage is not None and response.usage.completion_tokens == 12


async def test_streamed_completions_echo_logprobs_and_end_with_usage(tiny: LocalProvider) -> None:
    whole = await tiny.completions(completion(max_tokens=5, temperature=0, logprobs=1, echo=True))
    chunks = [c async for c in tiny.stream_completions(completion(max_tokens=5, temperature=0, logprobs=1, echo=True))]
    text = "".join(c.choices[0]["text"] for c in chunks if c.choices)
    assert text == whole.choices[0]["text"]
    merged: dict[str, list[Any]] = {"tokens": [], "token_logprobs": [], "top_logprobs": [], "text_offset": []}
    for c in chunks:
        for choice in c.choices:
            for key, values in (choice["logprobs"] or {}).items():
                merged[key] += values
    assert merged["tokens"] == whole.choices[0]["logprobs"]["tokens"]
    assert merged["text_offset"] == whole.choices[0]["logprobs"]["text_offset"]
    # Every stream ends with a usage-only chunk (the gateway drops it unless the client asked for it).
    assert chunks[-1].choices == [] and chunks[-1].usage is not None
    assert (chunks[-1].usage.prompt_tokens, chunks[-1].usage.completion_tokens) == (len("Reverse: abc"), 5)


async def test_streamed_chat_always_ends_with_usage(tiny: LocalProvider) -> None:
    chunks = [c async for c in tiny.stream_chat(chat(max_tokens=4))]
    assert chunks[-1].choices == [] and chunks[-1].usage is not None
    assert chunks[-1].usage.completion_tokens == 4


@pytest.mark.parametrize(
    ("body", "refused"),
    [
        ({"tools": [{"type": "function", "function": {"name": "f"}}]}, "tools"),
        ({"tool_choice": "required"}, "tool_choice"),
        ({"response_format": {"type": "json_schema", "json_schema": {"name": "x"}}}, "response_format"),
        ({"logit_bias": {"17": 5}}, "logit_bias"),
        ({"service_tier": "flex"}, "service_tier"),
    ],
)
async def test_a_parameter_that_reaches_the_provider_unchecked_is_refused_by_name(
    tiny: LocalProvider, body: dict[str, Any], refused: str
) -> None:
    # The gateway refuses these before dispatch; the provider holds to the same declaration.
    with pytest.raises(UpstreamError) as info:
        await tiny.chat(chat(**body))
    assert info.value.status == 400 and info.value.body is not None
    assert (info.value.body["error"]["param"], info.value.body["error"]["code"]) == (refused, "unsupported_parameter")
    assert f"`{refused}`" in info.value.message


async def test_no_op_values_are_honoured(tiny: LocalProvider) -> None:
    request = chat(
        max_tokens=2,
        tool_choice="none",
        tools=[],
        response_format={"type": "text"},
        frequency_penalty=0,
        logit_bias={},
        user="u1",
        metadata={"k": "v"},
    )
    assert tiny.capabilities().refusal(request) is None
    assert (await tiny.chat(request)).choices[0].finish_reason == "length"

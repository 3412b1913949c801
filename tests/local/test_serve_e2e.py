"""``lmdeck serve`` with zero configuration, through the OpenAI SDK: the demo model and local embeddings."""

from __future__ import annotations

import math
from collections.abc import Iterator
from pathlib import Path

import pytest
from openai import BadRequestError, OpenAI

from lmdeck.testing.servers import GatewayProcess, gateway_process

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[GatewayProcess]:
    data_dir: Path = tmp_path_factory.mktemp("zero-config")
    # No routes, no provider keys: only the admin key and a data directory.
    with gateway_process({}, data_dir=data_dir, env={"LMDECK_LOCAL_DEVICE": "cpu"}) as gw:
        yield gw


@pytest.fixture(scope="module")
def client(served: GatewayProcess) -> OpenAI:
    return OpenAI(base_url=served.base_url, api_key=served.admin_key, max_retries=0, timeout=120)


def test_demo_answers_a_chat(client: OpenAI) -> None:
    response = client.chat.completions.create(
        model="demo", messages=[{"role": "user", "content": "What is the capital of France?"}], temperature=0
    )
    assert response.choices[0].message.content == "Paris"
    assert response.choices[0].finish_reason == "stop"
    assert response.usage is not None and response.usage.completion_tokens == len("Paris")


def test_demo_streams(client: OpenAI) -> None:
    stream = client.chat.completions.create(
        model="demo",
        messages=[{"role": "user", "content": "Reverse: lmdeck"}],
        temperature=0,
        stream=True,
        stream_options={"include_usage": True},
    )
    chunks = list(stream)
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == "kcedml"
    assert [c.choices[0].finish_reason for c in chunks if c.choices][-1] == "stop"
    assert chunks[-1].usage is not None and chunks[-1].usage.completion_tokens == len(text)


def test_embed_returns_normalized_384_dimensional_vectors(client: OpenAI) -> None:
    response = client.embeddings.create(model="embed", input=["a cat on a mat", "a kitten on a rug", "tax law"])
    vectors = [d.embedding for d in response.data]
    assert [len(v) for v in vectors] == [384, 384, 384]
    assert all(math.isclose(sum(x * x for x in v), 1.0, rel_tol=1e-4) for v in vectors)

    def cos(a: list[float], b: list[float]) -> float:
        return sum(x * y for x, y in zip(a, b, strict=True))

    assert cos(vectors[0], vectors[1]) > cos(vectors[0], vectors[2])


def test_models_lists_the_bundled_routes(client: OpenAI) -> None:
    ids = {m.id for m in client.models.list()}
    assert {"demo", "embed"} <= ids


def test_demo_chat_logprobs_are_the_models(client: OpenAI) -> None:
    response = client.chat.completions.create(
        model="demo",
        messages=[{"role": "user", "content": "What is the capital of France?"}],
        temperature=0,
        logprobs=True,
        top_logprobs=2,
    )
    choice = response.choices[0]
    assert choice.logprobs is not None and choice.logprobs.content is not None
    tokens = choice.logprobs.content
    assert "".join(t.token for t in tokens) == choice.message.content == "Paris"
    for token in tokens:
        assert token.logprob < 0 and token.bytes == list(token.token.encode())
        assert token.top_logprobs[0].token == token.token  # greedy takes the likeliest
        assert token.top_logprobs[1].logprob < token.logprob
    # The demo model knows this one: the answer's tokens are near-certain.
    assert sum(t.logprob for t in tokens) > -1.0


def test_demo_completion_echo_scores_the_prompt(client: OpenAI) -> None:
    prompt = "<|user|>Reverse: abc<|end|><|assistant|>"
    scored = client.completions.create(model="demo", prompt=prompt, echo=True, logprobs=1, max_tokens=0)
    choice = scored.choices[0]
    assert choice.text == prompt
    assert choice.logprobs is not None and choice.logprobs.token_logprobs is not None
    assert choice.logprobs.token_logprobs[0] is None
    assert all(lp is not None and lp <= 0 for lp in choice.logprobs.token_logprobs[1:])
    assert choice.logprobs.text_offset is not None and choice.logprobs.text_offset[0] == 0
    answered = client.completions.create(
        model="demo", prompt=prompt, echo=True, logprobs=1, max_tokens=8, temperature=0
    )
    assert answered.choices[0].text == prompt + "cba"


def test_streamed_completions_send_usage_when_asked(client: OpenAI) -> None:
    prompt = "<|user|>Reverse: lmdeck<|end|><|assistant|>"
    chunks = list(
        client.completions.create(
            model="demo", prompt=prompt, temperature=0, stream=True, stream_options={"include_usage": True}
        )
    )
    assert "".join(c.choices[0].text for c in chunks if c.choices) == "kcedml"
    assert chunks[-1].choices == [] and chunks[-1].usage is not None
    assert chunks[-1].usage.completion_tokens == len("kcedml")
    plain = list(client.completions.create(model="demo", prompt=prompt, temperature=0, stream=True))
    assert all(c.usage is None and c.choices for c in plain)  # not asked: no usage chunk


def test_parameters_the_demo_cannot_honour_are_refused_by_name(client: OpenAI) -> None:
    with pytest.raises(BadRequestError) as info:
        client.chat.completions.create(
            model="demo",
            messages=[{"role": "user", "content": "What is 2+2?"}],
            tools=[{"type": "function", "function": {"name": "add", "parameters": {"type": "object"}}}],
        )
    assert info.value.status_code == 400
    assert info.value.body is not None and info.value.body["param"] == "tools"  # type: ignore[index]

"""The cache-semantic step in-process, behind the exact step, with a scripted upstream and encoder.

The encoder is a FAKE: texts listed in ``SAME`` embed to one vector, any other text to a vector of
its own, so the tests decide what the index finds; the term check is the real one.
"""

from __future__ import annotations

import hashlib
import time
from typing import Any

import numpy as np
import pytest

from lmdeck.cache.memory import MemoryStore
from lmdeck.cache.semantic.step import SemanticCache
from lmdeck.cache.semantic.store import SemanticStore
from lmdeck.cache.step import ExactCache
from lmdeck.pipeline.context import Completed, RequestContext, Result
from lmdeck.pipeline.principal import Principal
from lmdeck.protocol import APIError, ChatCompletionRequest, ChatCompletionResponse
from lmdeck.protocol.traces import TraceRecord
from lmdeck.settings import CacheSettings, RouteConfig

DIMS = 8
SAME = {"How do I reset my password?", "What's the procedure to reset my password?", "How do I reset my username?"}


def vector_of(text: str) -> list[float]:
    seed = 0 if text in SAME else int(hashlib.sha256(text.encode()).hexdigest()[:8], 16)
    v = np.random.default_rng(seed).standard_normal(DIMS)
    return [float(x) for x in v / np.linalg.norm(v)]


class Encoder:
    def __init__(self, fail: bool = False) -> None:
        self.fail = fail
        self.calls = 0

    async def __call__(self, texts: list[str]) -> tuple[list[list[float]], list[int]]:
        self.calls += 1
        if self.fail:
            raise RuntimeError("the encoder is broken")
        return [vector_of(t) for t in texts], [len(t.split()) for t in texts]


class Upstream:
    def __init__(self) -> None:
        self.asked: list[str] = []

    async def __call__(self, ctx: RequestContext) -> Result:
        assert isinstance(ctx.body, ChatCompletionRequest)
        text = str(ctx.body.messages[-1].content)
        self.asked.append(text)
        return Completed(
            ChatCompletionResponse.model_validate(
                {
                    "id": f"c{len(self.asked)}",
                    "created": int(time.time()),
                    "model": "m",
                    "choices": [
                        {
                            "index": 0,
                            "message": {"role": "assistant", "content": f"echo: {text}"},
                            "finish_reason": "stop",
                        }
                    ],
                    "usage": {"prompt_tokens": 3, "completion_tokens": 4, "total_tokens": 7},
                }
            )
        )


Chain = tuple[ExactCache, SemanticCache, Upstream, Encoder]


async def make(encoder: Encoder | None = None) -> Chain:
    settings = CacheSettings(enabled=True, semantic={"enabled": True})
    exact = ExactCache(MemoryStore(100, None), settings, lambda name: RouteConfig(name=name, targets=["openai:m"]))
    store = SemanticStore(DIMS, 100)
    await store.start()
    encoder = encoder or Encoder()
    return exact, SemanticCache(exact, store, encoder), Upstream(), encoder


async def ask(
    chain: Chain, text: str, *, team: str = "t1", mode: str | None = None, **extra: Any
) -> tuple[Result, RequestContext]:
    exact, semantic, upstream, _ = chain
    body = ChatCompletionRequest.model_validate(
        {"model": "r", "messages": [{"role": "user", "content": text}], "temperature": 0, **extra}
    )
    ctx = RequestContext(
        kind="chat",
        body=body,
        request_id="r",
        trace=TraceRecord(bundle_hash="b1"),
        headers={"x-lmdeck-cache": mode} if mode else {},
        principal=Principal(key_id=f"k-{team}", role="developer", team_id=team),
        route_name="r",
    )

    async def rest(c: RequestContext) -> Result:
        return await semantic(c, upstream)

    return await exact(ctx, rest), ctx


def content(result: Result) -> str:
    assert isinstance(result, Completed)
    return str(result.response.model_dump()["choices"][0]["message"]["content"])


async def test_a_paraphrase_hits_and_a_near_miss_with_the_same_vector_is_refused_by_the_term_check() -> None:
    chain = await make()
    await ask(chain, "How do I reset my password?")
    result, ctx = await ask(chain, "What's the procedure to reset my password?")
    assert content(result) == "echo: How do I reset my password?"
    assert ctx.trace.cache == "semantic" and result.headers["x-lmdeck-cache"] == "hit"
    result, ctx = await ask(chain, "How do I reset my username?")  # as similar, but another entity
    assert content(result) == "echo: How do I reset my username?" and not ctx.trace.cache_hit
    assert len(chain[2].asked) == 2


async def test_other_teams_and_other_tools_never_match() -> None:
    chain = await make()
    await ask(chain, "How do I reset my password?")
    _, ctx = await ask(chain, "What's the procedure to reset my password?", team="t2")
    assert not ctx.trace.cache_hit
    tools = [{"type": "function", "function": {"name": "f", "parameters": {"type": "object"}}}]
    _, ctx = await ask(chain, "What's the procedure to reset my password?", tools=tools)
    assert not ctx.trace.cache_hit
    assert len(chain[2].asked) == 3


async def test_only_if_cached_answers_504_on_a_semantic_miss_without_asking_upstream() -> None:
    chain = await make()
    with pytest.raises(APIError) as refused:
        await ask(chain, "What's the procedure to reset my password?", mode="only-if-cached")
    assert refused.value.status == 504
    assert chain[2].asked == []


async def test_bypass_neither_embeds_nor_keeps() -> None:
    chain = await make()
    await ask(chain, "How do I reset my password?", mode="bypass")
    assert chain[3].calls == 0 and len(chain[1].store) == 0


async def test_a_failing_encoder_sends_the_request_upstream() -> None:
    chain = await make(Encoder(fail=True))
    result, ctx = await ask(chain, "How do I reset my password?")
    assert content(result) == "echo: How do I reset my password?" and not ctx.trace.cache_hit
    with pytest.raises(APIError) as refused:
        await ask(chain, "What's the procedure to reset my password?", mode="only-if-cached")
    assert refused.value.status == 504

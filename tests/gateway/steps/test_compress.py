"""The compress step: opt-in per route, the request rewritten for every later step, the counts on the trace."""

from __future__ import annotations

from typing import Any

from lmdeck.gateway.steps.compress import CompressPrompt
from lmdeck.pipeline.context import Completed, RequestContext, Result
from lmdeck.protocol import ChatCompletionRequest, ChatCompletionResponse
from lmdeck.protocol.traces import TraceRecord
from lmdeck.settings import RouteConfig


class Words:
    name = "words"

    def count(self, text: str) -> int:
        return len(text.split())


ROUTES = {
    "squeezed": RouteConfig.model_validate(
        {"name": "squeezed", "targets": ["openai:m"], "compression": {"max_prompt_tokens": 20}}
    ),
    "plain": RouteConfig.model_validate({"name": "plain", "targets": ["openai:m"]}),
}


def context(route: str) -> RequestContext:
    messages = [{"role": "system", "content": "rules"}]
    messages += [{"role": "user", "content": f"question {i} " + "pad " * 10} for i in range(5)]
    body = ChatCompletionRequest.model_validate({"model": route, "messages": messages})
    return RequestContext(kind="chat", body=body, request_id="r", trace=TraceRecord(), route_name=route)


async def run(ctx: RequestContext) -> list[Any]:
    sent: list[Any] = []

    async def upstream(c: RequestContext) -> Result:
        sent.append(c.body)
        return Completed(ChatCompletionResponse(id="x", created=0, model="m", choices=[]))

    await CompressPrompt(ROUTES.get, Words())(ctx, upstream)
    return sent


async def test_a_route_that_opts_in_sends_fewer_tokens_and_says_how_many_on_the_trace() -> None:
    ctx = context("squeezed")
    [sent] = await run(ctx)
    assert [m.text().split()[:2] for m in sent.messages] == [["rules"], ["question", "3"], ["question", "4"]]
    entry = ctx.trace.metadata["compression"]
    assert entry["tokens_saved"] == entry["tokens_before"] - entry["tokens_after"] > 0
    assert entry["turns_dropped"] == 3 and entry["tokenizer"] == "words"


async def test_a_route_without_compression_is_left_alone() -> None:
    ctx = context("plain")
    before = ctx.body
    [sent] = await run(ctx)
    assert sent is before and "compression" not in ctx.trace.metadata

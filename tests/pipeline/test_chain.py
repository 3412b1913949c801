"""``Pipeline``: steps in order around a terminal handler, fixed once built."""

from __future__ import annotations

import pytest

from lmdeck.pipeline.chain import Handler, Pipeline
from lmdeck.pipeline.context import Completed, RequestContext, Result
from lmdeck.protocol import ChatCompletionRequest
from lmdeck.protocol.traces import TraceRecord


class Tag:
    def __init__(self, name: str) -> None:
        self.name = name

    async def __call__(self, ctx: RequestContext, call_next: Handler) -> Result:
        ctx.trace.tags.append(f"{self.name}:in")
        result = await call_next(ctx)
        ctx.trace.tags.append(f"{self.name}:out")
        return result


async def terminal(ctx: RequestContext) -> Result:
    ctx.trace.tags.append("terminal")
    return Completed(response=ctx.body)


async def test_each_step_wraps_the_steps_after_it() -> None:
    pipeline = Pipeline([Tag("a"), Tag("b")], terminal)
    body = ChatCompletionRequest(model="m", messages=[{"role": "user", "content": "hi"}])
    ctx = RequestContext(kind="chat", body=body, request_id="r1", trace=TraceRecord())
    await pipeline.run(ctx)
    assert ctx.trace.tags == ["a:in", "b:in", "terminal", "b:out", "a:out"]


def test_the_layout_pairs_each_step_with_its_phase() -> None:
    assert Pipeline([Tag("a"), Tag("b")], terminal, phases=["edge", "route"]).layout == [("edge", "a"), ("route", "b")]
    assert Pipeline([Tag("a")], terminal).layout == [("", "a")]


def test_one_phase_per_step_or_none() -> None:
    with pytest.raises(ValueError, match="2 steps but 1 phases"):
        Pipeline([Tag("a"), Tag("b")], terminal, phases=["edge"])


def test_a_built_pipeline_offers_no_way_to_reorder_it() -> None:
    pipeline = Pipeline([Tag("a")], terminal)
    for mutator in ("insert_before", "insert_after", "append", "replace"):
        assert not hasattr(pipeline, mutator)

"""Sorting step declarations: by phase, then by after/before constraints, then by declaration order."""

from __future__ import annotations

import itertools
from typing import Any

import pytest

from lmdeck.pipeline.chain import Handler
from lmdeck.pipeline.context import Completed, RequestContext, Result
from lmdeck.pipeline.order import (
    PHASES,
    PipelineOrderError,
    StepDeclaration,
    build_pipeline,
    describe_order,
    order_steps,
)
from lmdeck.protocol import ChatCompletionRequest
from lmdeck.protocol.traces import TraceRecord


class Named:
    """A step that appends its name to the trace's tags on the way in."""

    def __init__(self, name: str) -> None:
        self.name = name

    async def __call__(self, ctx: RequestContext, call_next: Handler) -> Result:
        ctx.trace.tags.append(self.name)
        return await call_next(ctx)


def decl(name: str, phase: Any, after: tuple[str, ...] = (), before: tuple[str, ...] = ()) -> StepDeclaration:
    return StepDeclaration(Named(name), phase, after=after, before=before)


def names(declarations: list[StepDeclaration]) -> list[str]:
    return [d.name for d in order_steps(declarations)]


def test_phases_order_steps_whatever_order_they_are_declared_in() -> None:
    declared = [decl("route", "route"), decl("cost", "meter"), decl("record", "trace"), decl("usage", "edge")]
    for permutation in itertools.permutations(declared):
        assert names(list(permutation)) == ["usage", "record", "cost", "route"]


def test_the_phases_run_from_the_edge_to_the_route_with_room_for_guards_and_a_cache() -> None:
    assert PHASES == (
        "edge",
        "identify",
        "trace",
        "resolve",
        "admit",
        "guard_input",
        "cache",
        "guard_output",
        "meter",
        "route",
    )


def test_within_a_phase_declaration_order_holds_where_no_constraint_speaks() -> None:
    declared = [decl("concurrency", "admit"), decl("ratelimit", "admit"), decl("budget", "admit")]
    assert names(declared) == ["concurrency", "ratelimit", "budget"]
    assert names(declared[::-1]) == ["budget", "ratelimit", "concurrency"]


def test_after_and_before_place_steps_within_their_phase() -> None:
    declared = [
        decl("bundle", "resolve", after=("prompt",)),
        decl("prompt", "resolve"),
        decl("pin", "resolve", after=("prompt",), before=("bundle",)),
        decl("experiment", "resolve", before=("prompt",)),
    ]
    assert names(declared) == ["experiment", "prompt", "pin", "bundle"]


def test_constraints_give_one_order_for_every_declaration_order() -> None:
    """Packages may be collected in any order: the constrained steps come out the same."""
    registry = [decl("prompt", "resolve"), decl("bundle", "resolve", after=("prompt",))]
    evaluation = [
        decl("experiment", "resolve", before=("prompt",)),
        decl("pin", "resolve", after=("prompt",), before=("bundle",)),
    ]
    assert names(registry + evaluation) == names(evaluation + registry) == ["experiment", "prompt", "pin", "bundle"]


def test_a_constraint_moves_only_the_steps_it_names() -> None:
    declared = [decl("a", "resolve"), decl("b", "resolve"), decl("c", "resolve"), decl("d", "resolve", before=("b",))]
    assert names(declared) == ["a", "d", "b", "c"]


def test_an_unknown_phase_is_refused_with_the_phases_to_choose_from() -> None:
    with pytest.raises(PipelineOrderError) as err:
        order_steps([decl("record", "trace"), decl("scrub", "sanitize")])
    message = str(err.value)
    assert "'scrub'" in message and "'sanitize'" in message
    assert ", ".join(PHASES) in message


def test_two_steps_of_one_name_are_refused() -> None:
    with pytest.raises(PipelineOrderError) as err:
        order_steps([decl("budget", "admit"), decl("cost", "meter"), decl("budget", "meter")])
    message = str(err.value)
    assert "two pipeline steps are named 'budget'" in message
    assert "admit" in message and "meter" in message


@pytest.mark.parametrize("relation", ["after", "before"])
def test_a_constraint_naming_no_step_is_refused(relation: str) -> None:
    anchor = {relation: ("promt",)}
    with pytest.raises(PipelineOrderError) as err:
        order_steps([decl("prompt", "resolve"), decl("bundle", "resolve", **anchor)])
    message = str(err.value)
    assert f"'bundle' is declared {relation} 'promt'" in message
    assert "no step is named 'promt'" in message and "prompt, bundle" in message


def test_a_constraint_on_a_step_of_another_phase_is_refused() -> None:
    with pytest.raises(PipelineOrderError) as err:
        order_steps([decl("cost", "meter"), decl("prompt", "resolve", before=("cost",))])
    message = str(err.value)
    assert "'prompt' (phase resolve) is declared before 'cost' (phase meter)" in message


def test_a_cycle_is_refused_naming_its_steps() -> None:
    declared = [
        decl("free", "resolve"),
        decl("a", "resolve", after=("c",)),
        decl("b", "resolve", after=("a",)),
        decl("c", "resolve", after=("b",)),
    ]
    with pytest.raises(PipelineOrderError) as err:
        order_steps(declared)
    message = str(err.value)
    assert "'a' → 'b' → 'c' → 'a'" in message
    assert "'free'" not in message


def test_a_cycle_of_after_and_before_is_refused() -> None:
    with pytest.raises(PipelineOrderError) as err:
        order_steps([decl("x", "cache", before=("y",)), decl("y", "cache", before=("x",))])
    assert "'x' → 'y' → 'x'" in str(err.value) or "'y' → 'x' → 'y'" in str(err.value)


def test_a_step_after_itself_is_a_cycle() -> None:
    with pytest.raises(PipelineOrderError, match="'loop' → 'loop'"):
        order_steps([decl("loop", "route", after=("loop",))])


async def test_the_built_pipeline_runs_the_steps_in_order_and_shows_their_phases() -> None:
    async def terminal(ctx: RequestContext) -> Result:
        return Completed(response=ChatCompletionRequest(model="m", messages=[{"role": "user", "content": "hi"}]))

    pipeline = build_pipeline(
        [decl("cost", "meter"), decl("prompt", "resolve"), decl("usage", "edge", after=())], terminal
    )
    assert pipeline.names == ["usage", "prompt", "cost"]
    assert pipeline.layout == [("edge", "usage"), ("resolve", "prompt"), ("meter", "cost")]
    ctx = RequestContext(
        kind="chat",
        body=ChatCompletionRequest(model="m", messages=[{"role": "user", "content": "hi"}]),
        request_id="r1",
        trace=TraceRecord(),
    )
    await pipeline.run(ctx)
    assert ctx.trace.tags == ["usage", "prompt", "cost"]


def test_the_order_reads_as_one_line() -> None:
    assert describe_order(["stream_usage", "authenticate", "record"]) == "stream_usage → authenticate → record"

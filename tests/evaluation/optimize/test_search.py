"""The search space: seeded splits and candidates, instruction rewrites, candidate prompt versions."""

from __future__ import annotations

import pytest

from lmdeck.evaluation.optimize.search import (
    Demo,
    PromptShape,
    answer_text,
    instruction_variants,
    plan_candidates,
    spec_for,
    split_rows,
    user_text,
)
from lmdeck.protocol.registry import PromptVersionSpec
from lmdeck.protocol.templates import PromptTemplate

SPEC = PromptVersionSpec.model_validate(
    {
        "messages": [{"role": "system", "content": "Be kind."}, {"role": "user", "content": "What is {{a}} + {{b}}?"}],
        "variables": {"a": "integer", "b": "integer"},
        "parameters": {"temperature": 0},
        "route": "calc",
    }
)


@pytest.mark.parametrize("count", [2, 3, 10, 101])
@pytest.mark.parametrize("holdout", [0.1, 0.5, 0.9])
def test_split_is_disjoint_covers_every_row_and_keeps_both_sides(count: int, holdout: float) -> None:
    split = split_rows(count, holdout=holdout, seed=7)
    assert set(split.train).isdisjoint(split.heldout)
    assert sorted(split.train + split.heldout) == list(range(count))
    assert split.train and split.heldout
    assert split == split_rows(count, holdout=holdout, seed=7)


def test_split_depends_on_the_seed() -> None:
    assert split_rows(40, holdout=0.5, seed=1) != split_rows(40, holdout=0.5, seed=2)


def test_instruction_variants_original_first_given_next_rewrites_deduplicated() -> None:
    variants = instruction_variants("Be kind.", ["Be brief.", "Be kind."])
    assert [v.source for v in variants] == ["original", "given", "bare", "format", "concise", "steps"]
    assert variants[2].text == ""
    assert variants[3].text == "Be kind. Follow the format of the examples exactly."
    # No instruction at all: the bare rewrite is the original, so it is not tried twice.
    assert [v.source for v in instruction_variants("")] == ["original", "format", "concise", "steps"]


def test_candidates_are_seeded_distinct_and_within_the_pool() -> None:
    instructions = instruction_variants("Be kind.")
    plans = plan_candidates(instructions, pool_size=10, n=8, k=3, seed=5)
    assert plans == plan_candidates(instructions, pool_size=10, n=8, k=3, seed=5)
    assert plans != plan_candidates(instructions, pool_size=10, n=8, k=3, seed=6)
    assert [p.number for p in plans] == list(range(1, 9))
    assert len({(p.instruction.text, p.demos) for p in plans}) == 8
    assert all(len(p.demos) == 3 and all(0 <= d < 10 for d in p.demos) for p in plans)
    assert [p.instruction.source for p in plans[:5]] == ["original", "bare", "format", "concise", "steps"]


def test_candidates_without_demos_never_repeat_the_original() -> None:
    plans = plan_candidates(instruction_variants("Be kind.", ["Be brief."]), pool_size=5, n=10, k=0, seed=0)
    assert [p.instruction.source for p in plans] == ["given", "bare", "format", "concise", "steps"]
    assert all(p.demos == () for p in plans)
    assert plan_candidates(instruction_variants("Hi."), pool_size=0, n=3, k=2, seed=0)[0].demos == ()


def test_a_small_pool_gives_fewer_candidates_not_a_loop() -> None:
    plans = plan_candidates(instruction_variants(""), pool_size=2, n=50, k=2, seed=0)
    assert 1 <= len(plans) <= 4  # one 2-subset of 2 rows, times 4 instructions


def test_candidate_version_has_instruction_demos_then_the_original_turns() -> None:
    shape = PromptShape.of(SPEC)
    assert shape.instruction == "Be kind."
    demos = [Demo("What is 1 + 2?", "3", "labeled", 4), Demo("Say {{ x }}", "{% if %}", "bootstrapped", 5)]
    spec = spec_for(shape, instruction_variants("Be kind.")[1], demos, SPEC)
    assert [m["role"] for m in spec.messages or []] == ["user", "assistant", "user", "assistant", "user"]
    assert spec.variables == SPEC.variables and spec.route == "calc" and spec.parameters == {"temperature": 0}
    rendered = PromptTemplate(spec).render_messages({"a": 5, "b": 6})
    # Demonstrations are data: template syntax in them is rendered as written.
    assert [m["content"] for m in rendered] == ["What is 1 + 2?", "3", "Say {{ x }}", "{% if %}", "What is 5 + 6?"]
    with_instruction = spec_for(shape, instruction_variants("Be kind.")[0], demos[:1], SPEC)
    assert (with_instruction.messages or [])[0] == {"role": "system", "content": "Be kind."}


def test_a_text_prompt_is_one_user_turn() -> None:
    text = PromptVersionSpec.model_validate({"text": "Reverse: {{ w }}", "variables": {"w": "string"}})
    shape = PromptShape.of(text)
    assert shape.instruction == "" and shape.rest == ({"role": "user", "content": "Reverse: {{ w }}"},)


def test_answers_and_user_text() -> None:
    assert answer_text("4") == "4" and answer_text(["a", "b"]) == "a" and answer_text({"x": 1}) == '{"x": 1}'
    assert answer_text(None) is None and answer_text([]) is None
    assert user_text([{"role": "system", "content": "s"}, {"role": "user", "content": "q"}]) == "q"

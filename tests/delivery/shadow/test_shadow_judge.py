"""Pairwise judging: both orders asked, a judge that contradicts itself on the swap gives a tie."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import pytest

from lmdeck.delivery.shadow.judge import JudgeError, PairwiseJudge, combine, read_choice, swapped_outcome
from lmdeck.evaluation.base import ChatReply
from lmdeck.evaluation.registry import EvaluatorRegistry, load_evaluators
from lmdeck.protocol.evaluation import EvaluatorError


class FakeJudgeModel:
    """A FAKE LLM judge: ``pick`` maps (answer A, answer B) to its reply; every call is recorded."""

    def __init__(self, pick: Any) -> None:
        self.pick = pick
        self.prompts: list[str] = []

    async def chat(self, body: dict[str, Any], *, tags: Sequence[str] = ()) -> ChatReply:
        prompt = body["messages"][-1]["content"]
        self.prompts.append(prompt)
        first = prompt.split("[Answer A]\n", 1)[1].split("\n[End of answer A]", 1)[0]
        second = prompt.split("[Answer B]\n", 1)[1].split("\n[End of answer B]", 1)[0]
        return ChatReply(text=self.pick(first, second))

    async def embed(self, route: str, texts: list[str]) -> list[list[float]]:
        raise AssertionError("not used")


@pytest.fixture(scope="module")
def evaluators() -> EvaluatorRegistry:
    return load_evaluators()


def test_read_choice_takes_the_last_verdict_line() -> None:
    assert read_choice("A is longer.\nVERDICT: B") == "B"
    assert read_choice("verdict: a ... on reflection VERDICT: **TIE**") == "TIE"
    with pytest.raises(JudgeError, match="VERDICT"):
        read_choice("both are fine")


def test_swapped_outcome_counts_only_what_survives_the_swap() -> None:
    assert swapped_outcome("B", "A") == "win"  # the candidate preferred in both positions
    assert swapped_outcome("A", "B") == "loss"
    assert swapped_outcome("A", "A") == "tie"  # always the first answer: position bias only
    assert swapped_outcome("B", "B") == "tie"
    assert swapped_outcome("TIE", "A") == "tie"
    assert combine(["win", "win", "loss"]) == "win"
    assert combine(["win", "loss", "tie"]) == "tie"


async def test_a_judge_biased_to_the_first_position_gives_ties(evaluators: EvaluatorRegistry) -> None:
    model = FakeJudgeModel(lambda first, second: "VERDICT: A")
    judge = PairwiseJudge(["route:judge"], evaluators, model)
    judged = await judge.judge("user: 2+2?", baseline="4", candidate="four")
    assert judged.outcome == "tie"
    assert judged.judgements == [{"judge": "route:judge", "orders": ["A", "A"], "outcome": "tie"}]
    # Both orders were asked: the baseline first, then the candidate first.
    assert "[Answer A]\n4\n" in model.prompts[0] and "[Answer A]\nfour\n" in model.prompts[1]


async def test_a_consistent_judge_decides_the_pair(evaluators: EvaluatorRegistry) -> None:
    prefers_longer = FakeJudgeModel(lambda first, second: "VERDICT: " + ("A" if len(first) > len(second) else "B"))
    judge = PairwiseJudge(["route:judge"], evaluators, prefers_longer)
    assert (await judge.judge("q", baseline="4", candidate="it is 4")).outcome == "win"
    assert (await judge.judge("q", baseline="it is 4", candidate="4")).outcome == "loss"


async def test_evaluator_judges_score_each_answer_alone(evaluators: EvaluatorRegistry) -> None:
    judge = PairwiseJudge([r"regex:pattern=^\d+$"], evaluators, FakeJudgeModel(lambda a, b: "unused"))
    judged = await judge.judge("q", baseline="about 4", candidate="4")
    assert judged.outcome == "win"
    assert judged.judgements == [{"judge": "regex", "scores": [0.0, 1.0], "outcome": "win"}]
    assert (await judge.judge("q", baseline="4", candidate="5")).outcome == "tie"


def test_judges_that_need_an_expected_answer_or_do_not_exist_are_refused(evaluators: EvaluatorRegistry) -> None:
    model = FakeJudgeModel(lambda a, b: "unused")
    with pytest.raises(EvaluatorError, match="expected answer"):
        PairwiseJudge(["exact"], evaluators, model)
    with pytest.raises(EvaluatorError, match="unknown evaluator"):
        PairwiseJudge(["no_such_evaluator"], evaluators, model)

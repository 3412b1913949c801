"""The evaluators that call a model: embedding similarity and LLM-as-judge."""

from __future__ import annotations

import pytest

from lmdeck.evaluation import EvaluatorContext, EvaluatorError, Sample
from lmdeck.evaluation.evaluators.embedding import EmbeddingSimilarity
from lmdeck.evaluation.evaluators.judge import LLMJudge, read_verdict
from lmdeck.evaluation.testing import ScriptedInference


async def test_embedding_similarity_is_the_cosine_of_the_closest_reference() -> None:
    vectors = {"out": [1.0, 0.0], "far": [0.0, 1.0], "near": [0.6, 0.8]}
    evaluator = EmbeddingSimilarity(EvaluatorContext(ScriptedInference(vectors=vectors)))
    result = await evaluator.evaluate(Sample("out", expected=["far", "near"]))
    assert result.value == pytest.approx(0.6)
    assert "0.600" in result.explanation


async def test_embedding_similarity_clips_negative_cosines() -> None:
    vectors = {"a": [1.0, 0.0], "b": [-1.0, 0.0]}
    evaluator = EmbeddingSimilarity(EvaluatorContext(ScriptedInference(vectors=vectors)))
    assert (await evaluator.evaluate(Sample("a", expected="b"))).value == 0.0


def test_model_based_evaluators_need_the_gateway() -> None:
    with pytest.raises(EvaluatorError, match="through the gateway"):
        EmbeddingSimilarity(EvaluatorContext())
    with pytest.raises(EvaluatorError, match="through the gateway"):
        LLMJudge(EvaluatorContext())


@pytest.mark.parametrize(
    ("reply", "scale", "value", "label"),
    [
        ("PASS - the sum is right", 1.0, 1.0, "pass"),
        ("fail: wrong city", 1.0, 0.0, "fail"),
        ("Yes.", 1.0, 1.0, "yes"),
        ("Score: 8", 10.0, 0.8, None),
        ("0.25", 1.0, 0.25, None),
        ("I cannot say", 1.0, None, "unparsed"),
        ("Score: 80", 10.0, None, "unparsed"),
    ],
)
def test_read_verdict(reply: str, scale: float, value: float | None, label: str | None) -> None:
    score = read_verdict(reply, scale)
    assert score.value == (pytest.approx(value) if value is not None else None)
    assert score.label == label


async def test_judge_with_builtin_instruction_goes_to_its_route() -> None:
    inference = ScriptedInference(reply="PASS correct")
    judge = LLMJudge(EvaluatorContext(inference), route="demo")
    result = await judge.evaluate(Sample("4", expected="4", input="What is 2+2?"))
    assert result.value == 1.0 and result.explanation == "PASS correct"
    body = inference.bodies[0]
    assert body["model"] == "demo"
    assert "What is 2+2?" in body["messages"][0]["content"]
    assert "prompt" not in body


async def test_judge_with_registered_prompt_sends_the_prompt_reference() -> None:
    inference = ScriptedInference(reply="FAIL")
    judge = LLMJudge(EvaluatorContext(inference), route="gpt", prompt="grader", label="production")
    result = await judge.evaluate(Sample("5", expected="4", input=[{"role": "user", "content": "2+2?"}]))
    assert result.value == 0.0
    ref = inference.bodies[0]["prompt"]
    assert ref["name"] == "grader" and ref["label"] == "production"
    assert ref["variables"] == {"input": "2+2?", "output": "5", "expected": "4"}


def test_judge_refuses_label_and_version_together() -> None:
    with pytest.raises(EvaluatorError, match="not both"):
        LLMJudge(EvaluatorContext(ScriptedInference()), prompt="g", label="production", version=2)

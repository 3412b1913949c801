"""The evaluators that call a model: embedding similarity and LLM-as-judge."""

from __future__ import annotations

from typing import Any

import pytest

from lmdeck.evaluation import EvaluatorContext, EvaluatorError, Sample
from lmdeck.evaluation.evaluators.embedding import EmbeddingSimilarity
from lmdeck.evaluation.evaluators.judge import LLMJudge
from lmdeck.evaluation.evaluators.verdict import VerdictError, read_verdict
from lmdeck.evaluation.runs.runner import score_safely
from lmdeck.evaluation.testing import ScriptedInference
from lmdeck.protocol import APIError


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
        ('{"reasoning": "2+2 is 4", "verdict": "pass"}', None, 1.0, "pass"),
        ('```json\n{"reasoning": "wrong city", "verdict": "fail"}\n```', None, 0.0, "fail"),
        ("The sum is right.\nVERDICT: PASS", None, 1.0, "pass"),
        ("Paris is not in Spain, so no.\nverdict: fail", None, 0.0, "fail"),
        ('{"reasoning": "mostly", "score": 8, "scale": 10}', 10.0, 0.8, None),
        ("Close enough.\nSCORE: 2.5/10", 10.0, 0.25, None),
    ],
)
def test_read_verdict(reply: str, scale: float | None, value: float, label: str | None) -> None:
    score = read_verdict(reply, scale)
    assert score.value == pytest.approx(value)
    assert score.label == label


@pytest.mark.parametrize(
    ("reply", "scale", "why"),
    [
        # Replies the old reader took for a verdict: a leading word or the first number in the text.
        ("Yes, I checked: the answer 5 is wrong. FAIL", None, "VERDICT"),
        ("Let me think. 1 + 1 is 2, so the answer 3 is wrong.", None, "VERDICT"),
        ("Score: 0.8 out of 10", 1.0, "SCORE"),
        ("PASS - the sum is right", None, "VERDICT"),
        ("Reasoning first: step 1 is fine, step 2 is not.\nSCORE: 7/100", 10.0, "out of 100"),
        ('{"reasoning": "ok", "score": 7, "scale": 100}', 10.0, "out of 100"),
        ('{"reasoning": "ok", "score": 11, "scale": 10}', 10.0, "outside 0-10"),
        ('{"reasoning": "ok", "verdict": "maybe"}', None, "pass"),
        ('{"verdict": "pass"}', None, "exactly the fields"),
        ('{"reasoning": "ok", "verdict": "pass", "confidence": 0.2}', None, "exactly the fields"),
        ("VERDICT: PASS\nOn reflection it is wrong.\nVERDICT: FAIL", None, "more than one"),
        ("{not json", None, "not valid JSON"),
        ("", None, "empty"),
    ],
)
def test_read_verdict_refuses_anything_but_the_asked_shape(reply: str, scale: float | None, why: str) -> None:
    with pytest.raises(VerdictError, match="no valid verdict") as refused:
        read_verdict(reply, scale)
    assert why in str(refused.value)


async def test_judge_with_builtin_instruction_asks_for_a_json_verdict() -> None:
    inference = ScriptedInference(reply='{"reasoning": "4 is right", "verdict": "pass"}')
    judge = LLMJudge(EvaluatorContext(inference), route="demo")
    result = await judge.evaluate(Sample("4", expected="4", input="What is 2+2?"))
    assert result.value == 1.0 and result.explanation == "4 is right"
    body = inference.bodies[0]
    assert body["model"] == "demo" and body["temperature"] == 0
    assert "What is 2+2?" in body["messages"][0]["content"]
    assert body["response_format"]["type"] == "json_schema"
    assert body["response_format"]["json_schema"]["schema"]["required"] == ["reasoning", "verdict"]
    assert "prompt" not in body


async def test_judge_with_registered_prompt_sends_the_prompt_reference() -> None:
    inference = ScriptedInference(reply="The answer should be 4.\nVERDICT: FAIL")
    judge = LLMJudge(EvaluatorContext(inference), route="gpt", prompt="grader", label="production", format="line")
    result = await judge.evaluate(Sample("5", expected="4", input=[{"role": "user", "content": "2+2?"}]))
    assert result.value == 0.0
    body = inference.bodies[0]
    ref = body["prompt"]
    assert ref["name"] == "grader" and ref["label"] == "production"
    assert ref["variables"] == {"input": "2+2?", "output": "5", "expected": "4"}
    assert "response_format" not in body and "VERDICT: PASS" in body["messages"][0]["content"]


async def test_a_graded_judge_asks_for_its_scale() -> None:
    inference = ScriptedInference(reply='{"reasoning": "fine", "score": 7, "scale": 10}')
    judge = LLMJudge(EvaluatorContext(inference), route="gpt", scale=10)
    assert (await judge.evaluate(Sample("x", input="q"))).value == pytest.approx(0.7)
    schema = inference.bodies[0]["response_format"]["json_schema"]["schema"]
    assert schema["properties"]["scale"]["enum"] == [10.0]


async def test_a_route_refusing_response_format_is_asked_for_the_verdict_line() -> None:
    def answer(body: dict[str, Any]) -> str:
        if "response_format" in body:
            raise APIError(400, "response_format is not supported by route 'small'", param="response_format")
        return "It is correct.\nVERDICT: PASS"

    inference = ScriptedInference(reply=answer)
    judge = LLMJudge(EvaluatorContext(inference), route="small")
    assert (await judge.evaluate(Sample("4", input="2+2?"))).value == 1.0
    assert (await judge.evaluate(Sample("4", input="2+2?"))).value == 1.0
    assert ["response_format" in b for b in inference.bodies] == [True, False, False]


async def test_an_unparsable_reply_is_an_error_not_a_score() -> None:
    judge = LLMJudge(EvaluatorContext(ScriptedInference(reply="Looks good to me, 9")), route="demo")
    with pytest.raises(VerdictError):
        await judge.evaluate(Sample("4", input="2+2?"))
    scored = await score_safely(judge, Sample("4", input="2+2?"))
    assert scored.value is None and scored.label == "evaluator_error" and "no valid verdict" in scored.explanation


def test_judge_refuses_bad_options() -> None:
    with pytest.raises(EvaluatorError, match="format"):
        LLMJudge(EvaluatorContext(ScriptedInference()), format="xml")
    with pytest.raises(EvaluatorError, match="scale"):
        LLMJudge(EvaluatorContext(ScriptedInference()), scale="ten")


def test_judge_refuses_label_and_version_together() -> None:
    with pytest.raises(EvaluatorError, match="not both"):
        LLMJudge(EvaluatorContext(ScriptedInference()), prompt="g", label="production", version=2)

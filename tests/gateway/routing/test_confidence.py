"""Confidence checks: the logprob check's verdicts, the registry of kinds, the logprob request and strip."""

from __future__ import annotations

from typing import Any

import pytest

from lmdeck.gateway.routing.confidence import ConfidenceChecks, LogprobCheck, with_logprobs, without_logprobs
from lmdeck.protocol import ChatCompletionRequest, CompletionRequest
from lmdeck.protocol.chat import ChatCompletionResponse
from lmdeck.protocol.completions import CompletionResponse
from lmdeck.settings import CascadeCheckConfig, ConfigError


def chat_answer(*choices: Any) -> ChatCompletionResponse:
    return ChatCompletionResponse.model_validate(
        {
            "id": "x",
            "created": 0,
            "model": "m",
            "choices": [
                {"index": i, "message": {"role": "assistant", "content": "a"}, "logprobs": lp}
                for i, lp in enumerate(choices)
            ],
        }
    )


def tokens(*values: float) -> dict[str, Any]:
    return {"content": [{"token": "t", "logprob": v} for v in values]}


async def test_every_choice_must_reach_the_threshold() -> None:
    check = LogprobCheck(CascadeCheckConfig(min_logprob=-0.5))
    assert (await check.judge(None, chat_answer(tokens(-0.1), tokens(-0.2)))).passed
    verdict = await check.judge(None, chat_answer(tokens(-0.1), tokens(-1.0, -2.0)))
    assert not verdict.passed and verdict.score == -1.5


async def test_an_answer_without_logprobs_or_tokens_fails() -> None:
    check = LogprobCheck(CascadeCheckConfig())
    assert (await check.judge(None, chat_answer(None))).reason == "the answer carries no token log-probabilities"
    assert (await check.judge(None, chat_answer(tokens()))).reason == "the answer has no tokens"
    assert (await check.judge(None, chat_answer())).reason == "the answer has no choices"


async def test_legacy_completions_are_judged_by_their_token_logprobs() -> None:
    answer = CompletionResponse.model_validate(
        {"id": "x", "created": 0, "model": "m", "choices": [{"text": "a", "logprobs": {"token_logprobs": [-0.2]}}]}
    )
    assert (await LogprobCheck(CascadeCheckConfig()).judge(None, answer)).score == -0.2
    stripped = without_logprobs(answer)
    assert isinstance(stripped, CompletionResponse) and stripped.choices[0]["logprobs"] is None


def test_logprobs_are_asked_for_without_changing_the_request_otherwise() -> None:
    chat = ChatCompletionRequest.model_validate({"model": "m", "messages": [{"role": "user", "content": "hi"}]})
    assert with_logprobs(chat).logprobs is True and chat.logprobs is None
    legacy = CompletionRequest.model_validate({"model": "m", "prompt": "hi"})
    assert with_logprobs(legacy).logprobs == 0


def test_an_unknown_kind_names_the_known_ones() -> None:
    config = CascadeCheckConfig(kind="evaluator", evaluator={"name": "json_valid"})
    with pytest.raises(ConfigError, match="use one of logprob"):
        ConfidenceChecks.builtin().create(config)

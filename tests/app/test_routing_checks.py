"""The cascade's evaluator check, wired by the app from lmdeck.evaluation."""

from __future__ import annotations

import pytest

from lmdeck.app.routing_checks import confidence_checks
from lmdeck.evaluation.registry import load_evaluators
from lmdeck.protocol import ChatCompletionRequest
from lmdeck.protocol.chat import ChatCompletionResponse
from lmdeck.settings import CascadeCheckConfig, ConfigError

SCHEMA = {"type": "object", "required": ["name", "age"]}


def answer(text: str) -> ChatCompletionResponse:
    return ChatCompletionResponse.model_validate(
        {"id": "x", "created": 0, "model": "m", "choices": [{"message": {"role": "assistant", "content": text}}]}
    )


def request() -> ChatCompletionRequest:
    return ChatCompletionRequest.model_validate(
        {
            "model": "m",
            "messages": [{"role": "user", "content": "Extract JSON: Ana is 34."}],
            "response_format": {"type": "json_schema", "json_schema": {"name": "person", "schema": SCHEMA}},
        }
    )


async def test_json_schema_judges_against_the_schema_the_request_asked_for() -> None:
    check = confidence_checks(load_evaluators()).create(
        CascadeCheckConfig(kind="evaluator", evaluator={"name": "json_schema"})
    )
    assert check.needs_logprobs is False
    kept = await check.judge(request(), answer('{"name": "Ana", "age": 34}'))
    assert kept.passed and kept.score == 1.0
    escalated = await check.judge(request(), answer('{"name": "Ana"}'))
    assert not escalated.passed and "'age' is a required property" in escalated.reason


async def test_evaluator_options_are_passed_on() -> None:
    config = CascadeCheckConfig(kind="evaluator", evaluator={"name": "regex", "options": {"pattern": r"^\d+$"}})
    check = confidence_checks(load_evaluators()).create(config)
    assert (await check.judge(None, answer("42"))).passed
    assert not (await check.judge(None, answer("forty-two"))).passed


def test_an_unknown_evaluator_is_a_config_error_naming_the_known_ones() -> None:
    config = CascadeCheckConfig(kind="evaluator", evaluator={"name": "no_such_thing"})
    with pytest.raises(ConfigError, match="unknown evaluator 'no_such_thing'"):
        confidence_checks(load_evaluators()).create(config)

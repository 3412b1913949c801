"""Which parameters a request uses: what capability checks compare against."""

from __future__ import annotations

from typing import Any

import pytest

from lmdeck.protocol import ChatCompletionRequest, CompletionRequest, EmbeddingRequest
from lmdeck.protocol.parameters import endpoint_of, parameters_in_use

USER = [{"role": "user", "content": "hi"}]


def chat(**fields: Any) -> ChatCompletionRequest:
    return ChatCompletionRequest.model_validate({"model": "m", "messages": USER, **fields})


def test_a_bare_request_uses_no_parameter() -> None:
    assert parameters_in_use(chat()) == []
    assert parameters_in_use(chat(stream=True, user="u", metadata={"conversation_id": "c"})) == []
    assert parameters_in_use(CompletionRequest(model="m", prompt="1+1=")) == []
    assert parameters_in_use(EmbeddingRequest(model="m", input="x")) == []


@pytest.mark.parametrize(
    ("fields", "used"),
    [
        ({"logprobs": True, "top_logprobs": 2}, ["logprobs", "top_logprobs"]),
        (
            {"tools": [{"type": "function", "function": {"name": "f"}}], "tool_choice": "required"},
            ["tools", "tool_choice"],
        ),
        ({"tool_choice": {"type": "function", "function": {"name": "f"}}}, ["tool_choice"]),
        ({"response_format": {"type": "json_object"}}, ["response_format"]),
        ({"n": 2, "seed": 1, "temperature": 0.5}, ["temperature", "n", "seed"]),
        ({"stream": True, "stream_options": {"include_usage": True}}, ["stream_options.include_usage"]),
        ({"brand_new_parameter": "x"}, ["brand_new_parameter"]),
        ({"presence_penalty": 0.5, "logit_bias": {"50256": -100}}, ["presence_penalty", "logit_bias"]),
    ],
)
def test_parameters_that_ask_for_something_are_in_use(fields: dict[str, Any], used: list[str]) -> None:
    assert sorted(parameters_in_use(chat(**fields))) == sorted(used)


@pytest.mark.parametrize(
    "fields",
    [
        {"logprobs": False},
        {"top_logprobs": 0},
        {"n": 1},
        {"tools": []},
        {"tool_choice": "auto"},
        {"tool_choice": "none"},
        {"parallel_tool_calls": True},
        {"response_format": {"type": "text"}},
        {"stream_options": {"include_usage": False}},
        {"presence_penalty": 0, "frequency_penalty": 0.0, "logit_bias": {}},
        {"stop": []},
        {"store": False},
        {"logprobs": None, "seed": None},
    ],
)
def test_values_that_ask_for_nothing_are_not_in_use(fields: dict[str, Any]) -> None:
    assert parameters_in_use(chat(**fields)) == []


def test_completions_parameters() -> None:
    body = CompletionRequest.model_validate({"model": "m", "prompt": "a", "echo": True, "logprobs": 0, "best_of": 1})
    assert parameters_in_use(body) == ["echo", "logprobs"]
    assert parameters_in_use(CompletionRequest.model_validate({"model": "m", "prompt": "a", "echo": False})) == []


def test_lmdeck_fields_are_not_parameters_of_the_target() -> None:
    body = chat(tags=["checkout"], prompt={"name": "p"})
    assert parameters_in_use(body) == []
    assert endpoint_of(body) == "chat"

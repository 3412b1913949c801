"""Every Messages API request rule (docs/providers.md), checked twice against the FAKE Anthropic API:

1. the fake refuses a body that breaks the rule, as the real API does (so these tests can fail);
2. the OpenAI request that would break it is either normalised (the fake accepts what the
   provider sends) or refused by lmdeck with a 400 naming the parameter, before any upstream call.
"""

from __future__ import annotations

import base64
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest

from lmdeck.protocol import APIError, ChatCompletionRequest
from lmdeck.providers.anthropic import AnthropicProvider
from lmdeck.testing.fake_anthropic import FakeAnthropic

FakePair = tuple[FakeAnthropic, AnthropicProvider]

USER = {"role": "user", "content": "hello there"}
VALID = {"model": "claude-x", "max_tokens": 16, "messages": [USER]}
TOOLS = [
    {
        "type": "function",
        "function": {
            "name": "get_weather",
            "parameters": {"type": "object", "properties": {"city": {"type": "string"}}},
        },
    }
]
ANTHROPIC_TOOLS = [{"name": "get_weather", "input_schema": {"type": "object", "properties": {}}}]


def call(call_id: str = "call_1", name: str = "get_weather") -> dict[str, Any]:
    return {"id": call_id, "type": "function", "function": {"name": name, "arguments": '{"city": "Paris"}'}}


def use(use_id: str = "toolu_1") -> dict[str, Any]:
    return {"type": "tool_use", "id": use_id, "name": "get_weather", "input": {}}


def image(media_type: str, size: int = 3) -> str:
    return f"data:{media_type};base64," + base64.b64encode(b"\x89" * size).decode()


Body = dict[str, Any]


@dataclass
class Rule:
    """One request rule: a body the API refuses, and the OpenAI request that would have produced it."""

    name: str
    violation: Body  # merged over VALID
    fake_says: str
    openai: Body
    refused: str | None = None  # the param lmdeck names when it refuses instead of normalising
    check: Callable[[Body], bool] = field(default=lambda body: True)


def system_messages(*contents: str) -> list[dict[str, Any]]:
    return [{"role": "system", "content": c} for c in contents]


RULES = [
    Rule(
        "max_tokens is required",
        {"max_tokens": None},
        "max_tokens: Field required",
        {"messages": [USER]},
        check=lambda b: b["max_tokens"] == 4096,
    ),
    Rule(
        "system text goes in `system`, not in messages",
        {"messages": [{"role": "system", "content": "be brief"}, USER]},
        "messages.0.role",
        {"messages": [*system_messages("be brief"), USER]},
        check=lambda b: b["system"] == "be brief" and [m["role"] for m in b["messages"]] == ["user"],
    ),
    Rule(
        "a system message in the middle of the conversation",
        {"messages": [USER, {"role": "assistant", "content": "hi"}, {"role": "system", "content": "now in French"}]},
        "messages.2.role",
        {
            "messages": [
                USER,
                {"role": "assistant", "content": "hi"},
                {"role": "developer", "content": "now in French"},
                {"role": "user", "content": "again"},
            ]
        },
        check=lambda b: b["system"] == "now in French" and len(b["messages"]) == 3,
    ),
    Rule(
        "only system messages",
        {"messages": []},
        "at least one message is required",
        {"messages": system_messages("write a haiku")},
        check=lambda b: "system" not in b and b["messages"][0]["content"][0]["text"] == "write a haiku",
    ),
    Rule(
        "the first turn is the user's",
        {"messages": [{"role": "assistant", "content": "How can I help?"}, USER]},
        'first message must use the "user" role',
        {"messages": [{"role": "assistant", "content": "How can I help?"}, USER]},
        check=lambda b: [m["role"] for m in b["messages"]] == ["user", "assistant", "user"],
    ),
    Rule(
        "turns alternate (consecutive user turns are merged)",
        {"messages": [USER, USER]},
        "roles must alternate",
        {"messages": [USER, {"role": "user", "content": "and more"}]},
        check=lambda b: len(b["messages"]) == 1 and len(b["messages"][0]["content"]) == 2,
    ),
    Rule(
        "turns alternate (consecutive assistant turns are merged)",
        {"messages": [USER, {"role": "assistant", "content": "a"}, {"role": "assistant", "content": "b"}]},
        "roles must alternate",
        {"messages": [USER, {"role": "assistant", "content": "a"}, {"role": "assistant", "content": "b"}, USER]},
        check=lambda b: [m["role"] for m in b["messages"]] == ["user", "assistant", "user"],
    ),
    Rule(
        "an empty assistant turn",
        {"messages": [USER, {"role": "assistant", "content": []}, USER]},
        "all messages must have non-empty content",
        {"messages": [USER, {"role": "assistant", "content": None}, {"role": "assistant", "content": ""}, USER]},
        check=lambda b: len(b["messages"]) == 1,
    ),
    Rule(
        "a whitespace-only assistant turn",
        {"messages": [USER, {"role": "assistant", "content": "  \n"}, USER]},
        "text content blocks must contain non-whitespace text",
        {"messages": [USER, {"role": "assistant", "content": "  \n"}, USER]},
        check=lambda b: len(b["messages"]) == 1,
    ),
    Rule(
        "an empty user turn",
        {"messages": [{"role": "user", "content": ""}]},
        "text content blocks must be non-empty",
        {"messages": [{"role": "user", "content": ""}, {"role": "assistant", "content": "hi"}, USER]},
        check=lambda b: b["messages"][0]["content"][0]["text"] == "(conversation start)",
    ),
    Rule(
        "empty text parts",
        {"messages": [{"role": "user", "content": [{"type": "text", "text": ""}, {"type": "text", "text": "x"}]}]},
        "text content blocks must be non-empty",
        {"messages": [{"role": "user", "content": [{"type": "text", "text": ""}, {"type": "text", "text": "x"}]}]},
        check=lambda b: b["messages"][0]["content"] == [{"type": "text", "text": "x"}],
    ),
    Rule(
        "whitespace-only text parts",
        {"messages": [{"role": "user", "content": [{"type": "text", "text": " "}, {"type": "text", "text": "x"}]}]},
        "must contain non-whitespace text",
        {"messages": [{"role": "user", "content": [{"type": "text", "text": "\n\t"}, {"type": "text", "text": "x"}]}]},
        check=lambda b: b["messages"][0]["content"] == [{"type": "text", "text": "x"}],
    ),
    Rule(
        "a final assistant turn (prefill) ends without whitespace",
        {"messages": [USER, {"role": "assistant", "content": "Sure, "}]},
        "final assistant content cannot end with trailing whitespace",
        {"messages": [USER, {"role": "assistant", "content": "Sure, \n"}]},
        check=lambda b: b["messages"][-1]["content"] == [{"type": "text", "text": "Sure,"}],
    ),
    Rule(
        "a final assistant turn of whitespace only",
        {"messages": [USER, {"role": "assistant", "content": [{"type": "text", "text": "  "}]}]},
        "must contain non-whitespace text",
        {"messages": [USER, {"role": "assistant", "content": "  "}]},
        check=lambda b: [m["role"] for m in b["messages"]] == ["user"],
    ),
    Rule(
        "a tool result answers a tool call of the previous turn",
        {"messages": [{"role": "user", "content": [{"type": "tool_result", "tool_use_id": "toolu_9"}]}]},
        "unexpected `tool_use_id` found in `tool_result` blocks",
        {"messages": [USER, {"role": "tool", "tool_call_id": "call_9", "content": "sunny"}]},
        refused="messages.1.tool_call_id",
    ),
    Rule(
        "a tool call gets its result in the next turn",
        {"messages": [USER, {"role": "assistant", "content": [use()]}]},
        "`tool_use` ids were found without `tool_result` blocks immediately after",
        {"messages": [USER, {"role": "assistant", "content": None, "tool_calls": [call()]}], "tools": TOOLS},
        refused="messages.1.tool_calls",
    ),
    Rule(
        "a tool call answered after another assistant turn",
        {"messages": [USER, {"role": "assistant", "content": [use()]}, USER]},
        "`tool_use` ids were found without `tool_result` blocks immediately after",
        {
            "messages": [
                USER,
                {"role": "assistant", "content": "", "tool_calls": [call("call_1"), call("call_2")]},
                {"role": "tool", "tool_call_id": "call_1", "content": "sunny"},
                {"role": "assistant", "content": "half done"},
                USER,
            ],
            "tools": TOOLS,
        },
        refused="messages.1.tool_calls",
    ),
    Rule(
        "tool results come first in their user turn",
        {
            "messages": [
                USER,
                {"role": "assistant", "content": [use()]},
                {
                    "role": "user",
                    "content": [{"type": "text", "text": "also"}, {"type": "tool_result", "tool_use_id": "toolu_1"}],
                },
            ],
            "tools": ANTHROPIC_TOOLS,
        },
        "tool_result blocks must come first",
        {
            "messages": [
                USER,
                {"role": "assistant", "content": None, "tool_calls": [call()]},
                {"role": "user", "content": "also"},
                {"role": "tool", "tool_call_id": "call_1", "content": "sunny"},
            ],
            "tools": TOOLS,
        },
        check=lambda b: [x["type"] for x in b["messages"][2]["content"]] == ["tool_result", "text"],
    ),
    Rule(
        "tool call ids are letters, digits, '_' and '-'",
        {
            "messages": [
                USER,
                {"role": "assistant", "content": [use("call:1/a")]},
                {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "call:1/a"}]},
            ]
        },
        "String should match pattern",
        {
            "messages": [
                USER,
                {"role": "assistant", "content": None, "tool_calls": [call("call:1/a")]},
                {"role": "tool", "tool_call_id": "call:1/a", "content": "sunny"},
            ],
            "tools": TOOLS,
        },
        check=lambda b: b["messages"][1]["content"][0]["id"] == b["messages"][2]["content"][0]["tool_use_id"],
    ),
    Rule(
        "legacy function messages",
        {"messages": [USER, {"role": "function", "content": "x"}]},
        "messages.1.role",
        {"messages": [USER, {"role": "function", "name": "f", "content": "x"}]},
        refused="messages.1.role",
    ),
    Rule(
        "messages carry only role and content",
        {"messages": [{**USER, "name": "bob"}]},
        "messages.0.name: Extra inputs are not permitted",
        {"messages": [{**USER, "name": "bob"}]},
        check=lambda b: set(b["messages"][0]) == {"role", "content"},
    ),
    Rule(
        "stop sequences contain non-whitespace",
        {"stop_sequences": ["\n"]},
        "each stop sequence must contain non-whitespace",
        {"messages": [USER], "stop": ["\n", "END"]},
        check=lambda b: b["stop_sequences"] == ["END"],
    ),
    Rule(
        "temperature is at most 1",
        {"temperature": 1.5},
        "temperature: Input should be less than or equal to 1",
        {"messages": [USER], "temperature": 1.5},
        refused="temperature",
    ),
    Rule(
        "temperature or top_p, not both",
        {"temperature": 0.5, "top_p": 0.9},
        "cannot both be specified",
        {"messages": [USER], "temperature": 0.5, "top_p": 0.9},
        refused="top_p",
    ),
    Rule(
        "temperature with the neutral top_p=1",
        {"temperature": 0.5, "top_p": 1},
        "cannot both be specified",
        {"messages": [USER], "temperature": 0.5, "top_p": 1},
        check=lambda b: b["temperature"] == 0.5 and "top_p" not in b,
    ),
    Rule("n > 1", {"n": 2}, "n: Extra inputs are not permitted", {"messages": [USER], "n": 2}, refused="n"),
    Rule(
        "n = 1",
        {"n": 1},
        "n: Extra inputs are not permitted",
        {"messages": [USER], "n": 1},
        check=lambda b: "n" not in b,
    ),
    Rule("seed", {"seed": 7}, "seed: Extra inputs", {"messages": [USER], "seed": 7}, refused="seed"),
    Rule(
        "presence_penalty",
        {"presence_penalty": 0.5},
        "presence_penalty: Extra inputs",
        {"messages": [USER], "presence_penalty": 0.5},
        refused="presence_penalty",
    ),
    Rule(
        "presence_penalty at its neutral 0",
        {"presence_penalty": 0},
        "presence_penalty: Extra inputs",
        {"messages": [USER], "presence_penalty": 0, "frequency_penalty": 0, "logprobs": False},
        check=lambda b: "presence_penalty" not in b,
    ),
    Rule(
        "logprobs",
        {"logprobs": True},
        "logprobs: Extra inputs",
        {"messages": [USER], "logprobs": True},
        refused="logprobs",
    ),
    Rule(
        "logit_bias",
        {"logit_bias": {"50256": -100}},
        "logit_bias: Extra inputs",
        {"messages": [USER], "logit_bias": {"50256": -100}},
        refused="logit_bias",
    ),
    Rule(
        "an unknown parameter",
        {"best_of": 3},
        "best_of: Extra inputs",
        {"messages": [USER], "best_of": 3},
        refused="best_of",
    ),
    Rule(
        "metadata takes only user_id",
        {"metadata": {"session": "s1"}},
        "metadata: only user_id is permitted",
        {"messages": [USER], "metadata": {"session": "s1"}, "user": "u-1"},
        check=lambda b: b["metadata"] == {"user_id": "u-1"},
    ),
    Rule(
        "service tiers are auto or standard_only",
        {"service_tier": "default"},
        "service_tier: Input should be 'auto' or 'standard_only'",
        {"messages": [USER], "service_tier": "default"},
        check=lambda b: b["service_tier"] == "standard_only",
    ),
    Rule(
        "service tier flex",
        {"service_tier": "flex"},
        "service_tier",
        {"messages": [USER], "service_tier": "flex"},
        refused="service_tier",
    ),
    Rule(
        "tool_choice needs tools",
        {"tool_choice": {"type": "auto"}},
        "tool_choice may only be specified while providing tools",
        {"messages": [USER], "tool_choice": "auto"},
        refused="tool_choice",
    ),
    Rule(
        "tools are function tools",
        {"tools": [{"type": "function", "function": {"name": "f"}}]},
        "Extra inputs are not permitted",
        {"messages": [USER], "tools": [{"type": "custom", "custom": {"name": "f"}}]},
        refused="tools.0.type",
    ),
    Rule(
        "parallel tool calls are switched off on tool_choice",
        {"parallel_tool_calls": False},
        "parallel_tool_calls: Extra inputs",
        {"messages": [USER], "tools": TOOLS, "parallel_tool_calls": False},
        check=lambda b: b["tool_choice"] == {"type": "auto", "disable_parallel_tool_use": True},
    ),
    Rule(
        "response_format becomes a forced tool",
        {"response_format": {"type": "json_object"}},
        "response_format: Extra inputs",
        {
            "messages": [USER],
            "response_format": {
                "type": "json_schema",
                "json_schema": {
                    "name": "reply",
                    "schema": {"type": "object", "properties": {"text": {"type": "string"}}},
                },
            },
        },
        check=lambda b: b["tool_choice"] == {"type": "tool", "name": "reply"},
    ),
    Rule(
        "images are JPEG, PNG, GIF or WebP",
        {
            "messages": [
                {
                    "role": "user",
                    "content": [
                        {"type": "image", "source": {"type": "base64", "media_type": "image/bmp", "data": "AAAA"}}
                    ],
                }
            ]
        },
        "media_type: Input should be",
        {"messages": [{"role": "user", "content": [{"type": "image_url", "image_url": {"url": image("image/bmp")}}]}]},
        refused="messages.0.content.0.image_url.url",
    ),
    Rule(
        "images of at most 5 MB",
        {
            "messages": [
                {
                    "role": "user",
                    "content": [
                        {
                            "type": "image",
                            "source": {
                                "type": "base64",
                                "media_type": "image/png",
                                "data": image("x", 5 * 1024 * 1024 + 1).split(",")[1],
                            },
                        }
                    ],
                }
            ]
        },
        "image exceeds 5 MB maximum",
        {
            "messages": [
                {
                    "role": "user",
                    "content": [{"type": "image_url", "image_url": {"url": image("image/png", 5 * 1024 * 1024 + 1)}}],
                }
            ]
        },
        refused="messages.0.content.0.image_url.url",
    ),
    Rule(
        "a PNG image and an image URL",
        {"messages": [{"role": "user", "content": [{"type": "image", "source": {"type": "file", "file_id": "f"}}]}]},
        "Input tag should be 'base64' or 'url'",
        {
            "messages": [
                {
                    "role": "user",
                    "content": [
                        {"type": "image_url", "image_url": {"url": image("image/png"), "detail": "low"}},
                        {"type": "image_url", "image_url": {"url": "https://example.test/cat.png"}},
                        {"type": "text", "text": "what is this?"},
                    ],
                }
            ]
        },
        check=lambda b: [x["type"] for x in b["messages"][0]["content"]] == ["image", "image", "text"],
    ),
    Rule(
        "at most 100 images",
        {
            "messages": [
                {
                    "role": "user",
                    "content": [{"type": "image", "source": {"type": "url", "url": "https://x.test/a.png"}}] * 101,
                }
            ]
        },
        "too many images",
        {
            "messages": [
                {"role": "user", "content": [{"type": "image_url", "image_url": {"url": "https://x.test/a.png"}}] * 101}
            ]
        },
        refused="messages",
    ),
    Rule(
        "audio input",
        {
            "messages": [
                {"role": "user", "content": [{"type": "input_audio", "input_audio": {"data": "AAAA", "format": "wav"}}]}
            ]
        },
        "does not match any of the expected tags",
        {
            "messages": [
                {"role": "user", "content": [{"type": "input_audio", "input_audio": {"data": "AAAA", "format": "wav"}}]}
            ]
        },
        refused="messages.0.content.0.type",
    ),
    Rule(
        "OpenAI file ids",
        {
            "messages": [
                {"role": "user", "content": [{"type": "document", "source": {"type": "file", "file_id": "file-1"}}]}
            ]
        },
        "a document must be a base64 PDF or plain text",
        {"messages": [{"role": "user", "content": [{"type": "file", "file": {"file_id": "file-1"}}]}]},
        refused="messages.0.content.0.file.file_id",
    ),
    Rule(
        "at most 4 cache breakpoints",
        {"system": [{"type": "text", "text": f"part {i}", "cache_control": {"type": "ephemeral"}} for i in range(5)]},
        "A maximum of 4 blocks with cache_control",
        {
            "messages": [
                *[
                    {
                        "role": "system",
                        "content": [{"type": "text", "text": f"part {i}", "cache_control": {"type": "ephemeral"}}],
                    }
                    for i in range(2)
                ],
                USER,
            ]
        },
        check=lambda b: len(b["system"]) == 2 and all("cache_control" in x for x in b["system"]),
    ),
]


def violating(rule: Rule) -> Body:
    body = {**VALID, **rule.violation}
    return {k: v for k, v in body.items() if v is not None}


@pytest.mark.parametrize("rule", RULES, ids=[r.name for r in RULES])
async def test_the_fake_refuses_what_the_real_api_refuses(rule: Rule) -> None:
    app = FakeAnthropic()
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://fake") as http:
        valid = await http.post("/v1/messages", json=VALID, headers={"anthropic-version": "2023-06-01"})
        assert valid.status_code == 200, valid.text
        refused = await http.post("/v1/messages", json=violating(rule), headers={"anthropic-version": "2023-06-01"})
    assert refused.status_code == 400
    error = refused.json()["error"]
    assert error["type"] == "invalid_request_error" and rule.fake_says in error["message"], error


@pytest.mark.parametrize("stream", [False, True], ids=["json", "stream"])
@pytest.mark.parametrize("rule", RULES, ids=[r.name for r in RULES])
async def test_each_rule_is_normalised_or_refused_by_name(fake: FakePair, rule: Rule, stream: bool) -> None:
    app, provider = fake
    request = ChatCompletionRequest.model_validate({"model": "claude", **rule.openai, "stream": stream})
    if rule.refused is not None:
        with pytest.raises(APIError) as info:
            if stream:
                [c async for c in provider.stream_chat(request)]
            else:
                await provider.chat(request)
        assert info.value.status == 400 and info.value.param == rule.refused, info.value.message
        assert info.value.body()["error"]["param"] == rule.refused
        assert app.requests == [], "a refused request must not reach the upstream"
        return
    if stream:
        chunks = [c async for c in provider.stream_chat(request)]
        assert chunks[-1].usage is not None
    else:
        reply = await provider.chat(request)
        assert reply.choices
    sent = app.requests[-1]
    assert rule.check(sent), sent

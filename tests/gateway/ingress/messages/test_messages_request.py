"""Messages requests translated into chat, refused by name where they cannot be carried."""

from __future__ import annotations

from typing import Any

import orjson
import pytest

from lmdeck.gateway.ingress.messages.request import native_only, parse_request, to_chat
from lmdeck.gateway.ingress.messages.response import to_message
from lmdeck.protocol import APIError, ChatCompletionResponse
from lmdeck.protocol.messages import MessagesRequest


def body(**fields: Any) -> MessagesRequest:
    base: dict[str, Any] = {"model": "chat", "max_tokens": 16, "messages": [{"role": "user", "content": "hi"}]}
    return MessagesRequest.model_validate({**base, **fields})


def test_every_part_is_carried() -> None:
    request = body(
        system=[{"type": "text", "text": "be brief", "cache_control": {"type": "ephemeral"}}],
        messages=[
            {
                "role": "user",
                "content": [
                    {"type": "text", "text": "look"},
                    {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": "AAAA"}},
                    {"type": "image", "source": {"type": "url", "url": "https://example.com/a.png"}},
                ],
            },
            {
                "role": "assistant",
                "content": [
                    {"type": "text", "text": "calling"},
                    {"type": "tool_use", "id": "t1", "name": "add", "input": {"a": 1}},
                ],
            },
            {
                "role": "user",
                "content": [
                    {
                        "type": "tool_result",
                        "tool_use_id": "t1",
                        "content": [{"type": "text", "text": "2"}],
                        "is_error": True,
                    },
                    {"type": "text", "text": "and now?"},
                ],
            },
        ],
        tools=[{"name": "add", "description": "adds", "input_schema": {"type": "object"}}],
        tool_choice={"type": "any", "disable_parallel_tool_use": True},
        stop_sequences=["END"],
        temperature=0.5,
        top_p=0.9,
        top_k=3,
        metadata={"user_id": "u1"},
        stream=True,
    )
    chat = to_chat(request).model_dump(exclude_none=True)
    assert chat["messages"] == [
        {"role": "system", "content": [{"type": "text", "text": "be brief", "cache_control": {"type": "ephemeral"}}]},
        {
            "role": "user",
            "content": [
                {"type": "text", "text": "look"},
                {"type": "image_url", "image_url": {"url": "data:image/png;base64,AAAA"}},
                {"type": "image_url", "image_url": {"url": "https://example.com/a.png"}},
            ],
        },
        {
            "role": "assistant",
            "content": "calling",
            "tool_calls": [{"id": "t1", "type": "function", "function": {"name": "add", "arguments": '{"a":1}'}}],
        },
        {"role": "tool", "tool_call_id": "t1", "content": "error: 2"},
        {"role": "user", "content": "and now?"},
    ]
    assert chat["tools"] == [
        {"type": "function", "function": {"name": "add", "parameters": {"type": "object"}, "description": "adds"}}
    ]
    assert chat["tool_choice"] == "required" and chat["parallel_tool_calls"] is False
    assert chat["stop"] == ["END"] and chat["max_tokens"] == 16 and chat["user"] == "u1"
    assert (chat["temperature"], chat["top_p"], chat["top_k"]) == (0.5, 0.9, 3)
    assert chat["stream"] is True and chat["stream_options"] == {"include_usage": True}


@pytest.mark.parametrize(
    ("choice", "expected"),
    [
        ({"type": "auto"}, "auto"),
        ({"type": "none"}, "none"),
        ({"type": "tool", "name": "add"}, {"type": "function", "function": {"name": "add"}}),
    ],
)
def test_tool_choice(choice: dict[str, Any], expected: Any) -> None:
    tools = [{"name": "add", "input_schema": {"type": "object"}}]
    assert to_chat(body(tools=tools, tool_choice=choice)).tool_choice == expected


@pytest.mark.parametrize(
    ("raw", "named"),
    [
        ({"model": "chat", "messages": [{"role": "user", "content": "hi"}]}, "max_tokens"),
        ({"model": "chat", "max_tokens": "5", "messages": [{"role": "user", "content": "hi"}]}, "max_tokens"),
        ({"model": "chat", "max_tokens": 5, "messages": []}, "messages"),
        ({"model": "chat", "max_tokens": 5, "messages": [{"role": "system", "content": "x"}]}, "messages.0.role"),
        ({"model": "chat", "max_tokens": 5, "messages": [{"role": "user", "content": "x"}], "top_k": 0}, "top_k"),
        (
            {"model": "chat", "max_tokens": 5, "messages": [{"role": "user", "content": "x"}], "container": "c"},
            "container",
        ),
    ],
)
def test_invalid_bodies_are_refused_naming_the_field(raw: dict[str, Any], named: str) -> None:
    with pytest.raises(APIError) as caught:
        parse_request(orjson.dumps(raw))
    assert caught.value.status == 400 and caught.value.param == named


@pytest.mark.parametrize(
    ("fields", "named"),
    [
        (
            {"messages": [{"role": "user", "content": [{"type": "document", "source": {}}]}]},
            "messages.0.content.0.type",
        ),
        (
            {"messages": [{"role": "user", "content": [{"type": "image", "source": {"type": "file"}}]}]},
            "messages.0.content.0.source.type",
        ),
        (
            {"messages": [{"role": "user", "content": [{"type": "tool_result", "content": "x"}]}]},
            "messages.0.content.0.tool_use_id",
        ),
        ({"tool_choice": {"type": "tool"}}, "tool_choice.name"),
        ({"metadata": {"session": "x"}}, "metadata.session"),
        ({"tools": [{"name": "t"}]}, "tools.0.input_schema"),
    ],
)
def test_what_chat_cannot_carry_is_refused_by_name(fields: dict[str, Any], named: str) -> None:
    with pytest.raises(APIError) as caught:
        to_chat(body(**fields))
    assert caught.value.status == 400 and caught.value.param == named and named in caught.value.message


def test_thinking_and_server_tools_are_native_only() -> None:
    request = body(
        thinking={"type": "enabled", "budget_tokens": 1024},
        messages=[
            {"role": "user", "content": "hi"},
            {
                "role": "assistant",
                "content": [{"type": "thinking", "thinking": "hm", "signature": "s"}, {"type": "text", "text": "yo"}],
            },
            {"role": "user", "content": "again"},
        ],
        tools=[{"type": "web_search_20250305", "name": "web_search"}],
    )
    assert native_only(request) == ["thinking", "messages.1.content.0", "tools.0.type"]
    assert native_only(body()) == []


def test_a_chat_answer_becomes_a_message() -> None:
    response = ChatCompletionResponse.model_validate(
        {
            "id": "c1",
            "created": 0,
            "model": "m",
            "choices": [
                {
                    "index": 0,
                    "message": {
                        "role": "assistant",
                        "content": "sure",
                        "tool_calls": [
                            {"id": "call_1", "type": "function", "function": {"name": "add", "arguments": '{"a": 1}'}}
                        ],
                    },
                    "finish_reason": "tool_calls",
                }
            ],
            "usage": {
                "prompt_tokens": 10,
                "completion_tokens": 4,
                "total_tokens": 14,
                "cache_read_input_tokens": 3,
                "cache_creation_input_tokens": 5,
            },
        }
    )
    message = to_message(response, body(), "msg_x").model_dump()
    assert message["content"] == [
        {"type": "text", "text": "sure"},
        {"type": "tool_use", "id": "call_1", "name": "add", "input": {"a": 1}},
    ]
    assert message["stop_reason"] == "tool_use" and message["model"] == "chat" and message["id"] == "msg_x"
    assert message["usage"] == {
        "input_tokens": 2,
        "output_tokens": 4,
        "cache_creation_input_tokens": 5,
        "cache_read_input_tokens": 3,
    }

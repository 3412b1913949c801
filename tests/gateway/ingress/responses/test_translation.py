"""Responses request → chat request, and chat response → Responses object (as the openai SDK reads it)."""

from __future__ import annotations

from typing import Any

import pytest
from openai.types.responses import Response as SDKResponse

from lmdeck.gateway.ingress.responses.request import parse_request, to_chat
from lmdeck.gateway.ingress.responses.response import history_of, to_response
from lmdeck.protocol import APIError, ChatCompletionResponse
from lmdeck.protocol.responses import ResponsesRequest


def request(**fields: Any) -> ResponsesRequest:
    return ResponsesRequest.model_validate({"model": "m", "input": "hi", **fields})


def test_items_tools_and_options_become_their_chat_equivalents() -> None:
    chat = to_chat(
        request(
            instructions="be brief",
            input=[
                {
                    "role": "user",
                    "content": [
                        {"type": "input_text", "text": "look"},
                        {"type": "input_image", "image_url": "https://x/y.png", "detail": "low"},
                    ],
                },
                {"type": "function_call", "call_id": "c1", "name": "f", "arguments": "{}"},
                {"type": "function_call", "call_id": "c2", "name": "g", "arguments": "{}"},
                {"type": "function_call_output", "call_id": "c1", "output": "one"},
            ],
            tools=[{"type": "function", "name": "f", "parameters": {"type": "object"}, "strict": True}],
            tool_choice={"type": "function", "name": "f"},
            parallel_tool_calls=False,
            text={"format": {"type": "json_schema", "name": "s", "schema": {"type": "object"}}},
            max_output_tokens=9,
            metadata={"k": "v"},
        ),
        history=[],
    )
    roles = [m.role for m in chat.messages]
    assert roles == ["system", "user", "assistant", "tool"]
    assert chat.messages[1].content == [
        {"type": "text", "text": "look"},
        {"type": "image_url", "image_url": {"url": "https://x/y.png", "detail": "low"}},
    ]
    assert [c["id"] for c in chat.messages[2].tool_calls or []] == ["c1", "c2"]  # one message, two calls
    assert chat.tools == [
        {"type": "function", "function": {"name": "f", "parameters": {"type": "object"}, "strict": True}}
    ]
    assert chat.tool_choice == {"type": "function", "function": {"name": "f"}}
    assert chat.response_format == {"type": "json_schema", "json_schema": {"name": "s", "schema": {"type": "object"}}}
    assert chat.max_completion_tokens == 9 and chat.metadata == {"k": "v"}
    assert (chat.model_extra or {})["parallel_tool_calls"] is False


@pytest.mark.parametrize(
    ("fields", "param"),
    [
        ({"tools": [{"type": "web_search"}]}, "tools.0.type"),
        ({"include": ["x"]}, "include"),
        ({"unheard_of": 1}, "unheard_of"),
        ({"tool_choice": {"type": "file_search"}}, "tool_choice"),
        ({"text": {"format": {"type": "json_schema"}}}, "text.format"),
        ({"reasoning": {"summary": "auto"}}, "reasoning"),
    ],
)
def test_what_has_no_chat_equivalent_is_refused_by_name(fields: dict[str, Any], param: str) -> None:
    with pytest.raises(APIError) as refused:
        to_chat(request(**fields), history=[])
    assert refused.value.status == 400 and refused.value.param == param


def test_a_bad_item_is_named_by_its_index() -> None:
    with pytest.raises(APIError) as refused:
        parse_request(b'{"model": "m", "input": [{"role": "user", "content": "ok"}, {"type": "nope"}]}')
    assert refused.value.param == "input.1"


def test_a_chat_answer_is_a_response_the_sdk_reads_and_continues() -> None:
    chat = ChatCompletionResponse.model_validate(
        {
            "id": "c",
            "created": 1,
            "model": "m",
            "choices": [
                {
                    "message": {
                        "role": "assistant",
                        "content": "calling",
                        "tool_calls": [
                            {"id": "call_1", "type": "function", "function": {"name": "f", "arguments": "{}"}}
                        ],
                    },
                    "finish_reason": "tool_calls",
                }
            ],
            "usage": {"prompt_tokens": 4, "completion_tokens": 3, "total_tokens": 7},
        }
    )
    response = to_response(chat, request(), "resp_1")
    parsed = SDKResponse.model_validate(response.model_dump())
    assert parsed.output_text == "calling" and parsed.usage is not None and parsed.usage.total_tokens == 7
    assert [item.type for item in parsed.output] == ["message", "function_call"]
    history = history_of([{"role": "user", "content": "hi"}], response)
    assert history[-1]["tool_calls"][0]["id"] == "call_1" and history[-1]["content"] == "calling"


def test_a_refusal_names_the_responses_parameter() -> None:
    from lmdeck.gateway.ingress.responses.serving import in_responses_terms

    refused = in_responses_terms(APIError(400, "does not support `response_format`", param="response_format"))
    assert refused.param == "text.format" and "`text.format`" in refused.message
    assert in_responses_terms(APIError(400, "image", param="messages.3.content.1")).param == "input"
    kept = APIError(400, "no", param="tools")
    assert in_responses_terms(kept) is kept


def test_a_native_answer_is_returned_only_as_the_upstream_said_it() -> None:
    from lmdeck.gateway.ingress.responses.serving import native_response
    from lmdeck.providers.responses_native import chat_of_response

    upstream = {
        "id": "resp_up",
        "object": "response",
        "created_at": 1,
        "status": "completed",
        "model": "m",
        "output": [{"type": "message", "role": "assistant", "content": [{"type": "output_text", "text": "secret"}]}],
        "usage": {"input_tokens": 2, "output_tokens": 1, "total_tokens": 3},
    }
    chat = chat_of_response(upstream)
    assert chat.usage is not None and chat.usage.prompt_tokens == 2 and chat.choices[0].message["content"] == "secret"
    native = native_response(chat, "resp_ours")
    assert native is not None and native.id == "resp_ours" and native.output_text() == "secret"
    # An output guardrail's redaction changes the chat answer: the redacted translation is answered instead.
    redacted = chat.model_copy(
        update={"choices": [chat.choices[0].model_copy(update={"message": {"role": "assistant", "content": "[x]"}})]}
    )
    assert native_response(redacted, "resp_ours") is None

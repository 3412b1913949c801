"""A Responses API answer from an upstream that speaks it natively, read as a chat completion.

The gateway's pipeline (tracing, cost, budgets, output guardrails, the cache) works on chat
completions; a target that received a request's original ``/v1/responses`` body answers with a
``response`` object, which :func:`chat_of_response` reads as the chat completion it amounts to, keeping
the original under ``responses_native`` for the client::

    chat = chat_of_response(upstream_json)     # ChatCompletionResponse, extra field responses_native
"""

from __future__ import annotations

from typing import Any

from lmdeck.protocol import ChatCompletionResponse

#: The extra field of a chat completion that holds the upstream's own ``response`` object.
NATIVE_FIELD = "responses_native"


def chat_choices(response: dict[str, Any]) -> list[dict[str, Any]]:
    """The one chat choice a ``response`` object's output amounts to."""
    text, calls = "", []
    for item in response.get("output") or []:
        if not isinstance(item, dict):
            continue
        if item.get("type") == "message":
            text += "".join(
                str(part.get("text", ""))
                for part in item.get("content") or []
                if isinstance(part, dict) and part.get("type") == "output_text"
            )
        elif item.get("type") == "function_call":
            function = {"name": str(item.get("name", "")), "arguments": str(item.get("arguments", ""))}
            calls.append({"id": str(item.get("call_id", "")), "type": "function", "function": function})
    message: dict[str, Any] = {"role": "assistant", "content": text or None}
    if calls:
        message["tool_calls"] = calls
    incomplete = response.get("status") == "incomplete"
    finish = "length" if incomplete else "tool_calls" if calls else "stop"
    return [{"index": 0, "message": message, "finish_reason": finish}]


def chat_of_response(response: dict[str, Any]) -> ChatCompletionResponse:
    """``response`` (a Responses API object) as a chat completion, the object itself under ``responses_native``."""
    found = response.get("usage")
    usage: dict[str, Any] = found if isinstance(found, dict) else {}
    prompt, completion = int(usage.get("input_tokens") or 0), int(usage.get("output_tokens") or 0)
    cached = (usage.get("input_tokens_details") or {}).get("cached_tokens") or 0
    created = response.get("created_at")
    return ChatCompletionResponse.model_validate(
        {
            "id": str(response.get("id", "")),
            "created": int(created) if isinstance(created, int | float) else 0,
            "model": str(response.get("model", "")),
            "choices": chat_choices(response),
            "usage": {
                "prompt_tokens": prompt,
                "completion_tokens": completion,
                "total_tokens": int(usage.get("total_tokens") or prompt + completion),
                "prompt_tokens_details": {"cached_tokens": int(cached)},
            },
            NATIVE_FIELD: response,
        }
    )

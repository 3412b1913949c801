"""A chat completion translated back into a Responses ``response`` object.

    response = to_response(chat_response, request, response_id)

The first choice's text becomes one ``message`` item with one ``output_text`` part, each tool call a
``function_call`` item; ``finish_reason: "length"`` makes the response ``incomplete`` with
``incomplete_details.reason: "max_output_tokens"``. Usage is counted in Responses' terms
(``input_tokens``, ``output_tokens``, ``total_tokens``).
"""

from __future__ import annotations

import secrets
import time
from typing import Any

from lmdeck.protocol import ChatCompletionResponse
from lmdeck.protocol.chat import Usage
from lmdeck.protocol.responses import ResponseObject, ResponsesRequest, ResponseUsage


def new_id(prefix: str) -> str:
    """An id in OpenAI's style: ``resp_…``, ``msg_…``, ``fc_…`` (24 random bytes, hex)."""
    return f"{prefix}_{secrets.token_hex(24)}"


def usage_of(usage: Usage | None) -> ResponseUsage | None:
    if usage is None:
        return None
    details = (usage.model_extra or {}).get("prompt_tokens_details") or {}
    cached, written = (int(details.get(name) or 0) for name in ("cached_tokens", "cache_write_tokens"))
    return ResponseUsage(
        input_tokens=usage.prompt_tokens,
        input_tokens_details={"cached_tokens": cached, "cache_write_tokens": written},
        output_tokens=usage.completion_tokens,
        total_tokens=usage.total_tokens or usage.prompt_tokens + usage.completion_tokens,
    )


def message_item(text: str, item_id: str, status: str = "completed") -> dict[str, Any]:
    return {
        "type": "message",
        "id": item_id,
        "status": status,
        "role": "assistant",
        "content": [{"type": "output_text", "text": text, "annotations": [], "logprobs": []}],
    }


def function_call_item(
    call_id: str, name: str, arguments: str, item_id: str, status: str = "completed"
) -> dict[str, Any]:
    return {
        "type": "function_call",
        "id": item_id,
        "call_id": call_id,
        "name": name,
        "arguments": arguments,
        "status": status,
    }


def shell(request: ResponsesRequest, response_id: str, created_at: int | None = None) -> ResponseObject:
    """The response object for ``request`` before any output: what the request asked, echoed back."""
    return ResponseObject(
        id=response_id,
        created_at=created_at if created_at is not None else int(time.time()),
        status="in_progress",
        instructions=request.instructions,
        max_output_tokens=request.max_output_tokens,
        model=request.model,
        parallel_tool_calls=request.parallel_tool_calls is not False,
        previous_response_id=request.previous_response_id,
        reasoning=request.reasoning,
        store=request.store,
        temperature=request.temperature,
        text={"format": request.text.format.model_dump(by_alias=True, exclude_none=True)}
        if request.text is not None and request.text.format is not None
        else {"format": {"type": "text"}},
        tool_choice=request.tool_choice if request.tool_choice is not None else "auto",
        tools=list(request.tools or []),
        top_p=request.top_p,
        user=request.user,
        metadata=dict(request.metadata or {}),
    )


def finish(response: ResponseObject, finish_reason: str | None) -> ResponseObject:
    """``response`` marked done: ``incomplete`` when the output was cut at ``max_output_tokens``."""
    if finish_reason == "length":
        response.status = "incomplete"
        response.incomplete_details = {"reason": "max_output_tokens"}
    else:
        response.status = "completed"
    return response


def to_response(chat: ChatCompletionResponse, request: ResponsesRequest, response_id: str) -> ResponseObject:
    """``chat``'s first choice as the response to ``request`` (see the module docs)."""
    response = shell(request, response_id)
    choice = chat.choices[0] if chat.choices else None
    message = choice.message if choice is not None else {}
    content = message.get("content")
    text = content if isinstance(content, str) else ""
    if isinstance(content, list):
        text = "".join(str(p.get("text", "")) for p in content if isinstance(p, dict))
    if text or not message.get("tool_calls"):
        response.output.append(message_item(text, new_id("msg")))
    for call in message.get("tool_calls") or []:
        function = call.get("function") or {}
        response.output.append(
            function_call_item(
                str(call.get("id") or new_id("call")),
                str(function.get("name", "")),
                str(function.get("arguments") or ""),
                new_id("fc"),
            )
        )
    response.usage = usage_of(chat.usage)
    return finish(response, choice.finish_reason if choice is not None else None)


def history_of(messages: list[dict[str, Any]], response: ResponseObject) -> list[dict[str, Any]]:
    """The chat messages a request naming ``response`` in ``previous_response_id`` continues from:
    ``messages`` (the request's, without the message its ``instructions`` became) and the response's output."""
    history = list(messages)
    calls = [
        {"id": item["call_id"], "type": "function", "function": {"name": item["name"], "arguments": item["arguments"]}}
        for item in response.output
        if item.get("type") == "function_call"
    ]
    text = response.output_text()
    if text or calls:
        history.append({"role": "assistant", "content": text or None, **({"tool_calls": calls} if calls else {})})
    return history

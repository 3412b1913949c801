"""A chat completion as Anthropic's message, and chat usage as Anthropic's.

    message = to_message(chat_response, body)    # a Message: text and tool_use blocks, stop_reason, usage

``finish_reason`` becomes ``stop_reason``: ``stop`` → ``end_turn`` (``stop_sequence``, with the
sequence, when the upstream says which of the request's ``stop_sequences`` it stopped at, as vLLM's
``stop_reason`` does), ``length`` → ``max_tokens``, ``tool_calls`` → ``tool_use``,
``content_filter`` → ``refusal``. Usage keeps the cache apart, as Anthropic counts it:
``input_tokens`` is the prompt less the tokens read from or written to the cache.
"""

from __future__ import annotations

import logging
import uuid
from typing import Any

import orjson

from lmdeck.protocol.chat import ChatCompletionResponse, Usage
from lmdeck.protocol.messages import Message, MessagesRequest, MessageUsage, StopReason

log = logging.getLogger(__name__)

STOP_REASONS: dict[str, StopReason] = {
    "stop": "end_turn",
    "length": "max_tokens",
    "tool_calls": "tool_use",
    "function_call": "tool_use",
    "content_filter": "refusal",
}


def new_id(prefix: str = "msg") -> str:
    return f"{prefix}_{uuid.uuid4().hex}"


def usage_of(usage: Usage | dict[str, Any] | None) -> MessageUsage:
    """Anthropic usage for chat usage: ``input_tokens`` less cache reads and writes, each counted apart."""
    if usage is None:
        return MessageUsage()
    data = usage.model_dump() if isinstance(usage, Usage) else dict(usage)
    details = data.get("prompt_tokens_details") or {}
    read = int(
        data.get("cache_read_input_tokens") or (details.get("cached_tokens") if isinstance(details, dict) else 0) or 0
    )
    written = int(data.get("cache_creation_input_tokens") or 0)
    prompt = int(data.get("prompt_tokens") or 0)
    return MessageUsage(
        input_tokens=max(prompt - read - written, 0),
        output_tokens=int(data.get("completion_tokens") or 0),
        cache_creation_input_tokens=written,
        cache_read_input_tokens=read,
    )


def stop_of(
    finish: str | None, choice: dict[str, Any], stops: list[str] | None
) -> tuple[StopReason | None, str | None]:
    """``stop_reason`` and ``stop_sequence`` for a chat choice's ``finish_reason``."""
    if finish is None:
        return None, None
    matched = choice.get("stop_reason")
    if finish == "stop" and isinstance(matched, str) and stops and matched in stops:
        return "stop_sequence", matched
    return STOP_REASONS.get(finish, "end_turn"), None


def tool_input(arguments: str, name: str) -> dict[str, Any]:
    """A tool call's arguments as the ``input`` object of a ``tool_use`` block."""
    try:
        value = orjson.loads(arguments or "{}")
    except orjson.JSONDecodeError:
        log.warning("tool call %r has arguments that are not JSON; passed on as {}", name)
        return {}
    return value if isinstance(value, dict) else {"value": value}


def to_message(response: ChatCompletionResponse, body: MessagesRequest, message_id: str | None = None) -> Message:
    """Anthropic's message for a whole chat completion (choice 0)."""
    choice = response.choices[0].model_dump() if response.choices else {}
    reply = choice.get("message") or {}
    content: list[dict[str, Any]] = []
    text = reply.get("content")
    if isinstance(text, list):
        text = "".join(str(p.get("text", "")) for p in text if isinstance(p, dict))
    if text:
        content.append({"type": "text", "text": text})
    for call in reply.get("tool_calls") or []:
        function = call.get("function") or {}
        name = str(function.get("name") or "")
        content.append(
            {
                "type": "tool_use",
                "id": str(call.get("id") or new_id("toolu")),
                "name": name,
                "input": tool_input(str(function.get("arguments") or ""), name),
            }
        )
    reason, sequence = stop_of(choice.get("finish_reason"), choice, body.stop_sequences)
    return Message(
        id=message_id or new_id(),
        model=body.model,
        content=content,
        stop_reason=reason,
        stop_sequence=sequence,
        usage=usage_of(response.usage),
    )

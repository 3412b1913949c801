"""Anthropic answers in OpenAI's shapes: the message, its usage, and stop sequences lmdeck applies itself.

    to_chat_response(message, call)      # an OpenAI chat completion (dict)
    to_usage(message["usage"])           # OpenAI usage, with Anthropic's cache counts kept

Text and ``tool_use`` blocks become ``content`` and ``tool_calls``; a ``response_format``
answer (the input of the forced :attr:`MessagesCall.json_tool`) becomes ``content`` as JSON;
stop reasons become ``finish_reason``. When a whitespace-only stop sequence (which Anthropic
refuses, see :mod:`lmdeck.providers.anthropic.request`) occurs in the text, the text ends
before it and ``finish_reason`` is ``stop``, as OpenAI would have answered.
"""

from __future__ import annotations

import time
from typing import Any

import orjson

from lmdeck.providers.anthropic.request import MessagesCall

FINISH_REASONS: dict[str, str] = {
    "end_turn": "stop",
    "stop_sequence": "stop",
    "pause_turn": "stop",
    "max_tokens": "length",
    "model_context_window_exceeded": "length",
    "tool_use": "tool_calls",
    "refusal": "content_filter",
}


def finish_reason(stop_reason: Any, call: MessagesCall | None = None) -> str:
    if stop_reason == "tool_use" and call is not None and call.json_tool:
        return "stop"
    return FINISH_REASONS.get(str(stop_reason), "stop")


def to_usage(usage: dict[str, Any]) -> dict[str, Any]:
    """OpenAI usage for Anthropic's.

    Every input token counts in ``prompt_tokens`` (``input_tokens`` + cache reads + cache
    writes); cache reads are ``prompt_tokens_details.cached_tokens``, as OpenAI reports its own.
    OpenAI's shape has no cache writes, so Anthropic's counts are kept beside it under their
    own names: ``cache_read_input_tokens``, ``cache_creation_input_tokens`` and, when Anthropic
    splits it by cache lifetime, ``cache_creation`` (``ephemeral_5m_input_tokens``,
    ``ephemeral_1h_input_tokens``).
    """
    read = int(usage.get("cache_read_input_tokens") or 0)
    written = int(usage.get("cache_creation_input_tokens") or 0)
    prompt = int(usage.get("input_tokens") or 0) + read + written
    completion = int(usage.get("output_tokens") or 0)
    out: dict[str, Any] = {
        "prompt_tokens": prompt,
        "completion_tokens": completion,
        "total_tokens": prompt + completion,
        "prompt_tokens_details": {"cached_tokens": read},
        "cache_read_input_tokens": read,
        "cache_creation_input_tokens": written,
    }
    split = usage.get("cache_creation")
    if isinstance(split, dict):
        out["cache_creation"] = {
            "ephemeral_5m_input_tokens": int(split.get("ephemeral_5m_input_tokens") or 0),
            "ephemeral_1h_input_tokens": int(split.get("ephemeral_1h_input_tokens") or 0),
        }
    return out


def first_stop(text: str, stops: list[str]) -> int | None:
    """Where the earliest of ``stops`` begins in ``text``, or None."""
    found = [i for i in (text.find(s) for s in stops) if i >= 0]
    return min(found) if found else None


def to_chat_response(message: dict[str, Any], call: MessagesCall | None = None) -> dict[str, Any]:
    """An OpenAI chat completion for an Anthropic message."""
    blocks = [b for b in message.get("content") or [] if isinstance(b, dict)]
    json_tool = call.json_tool if call is not None else None
    # A response_format answer is the forced tool's input alone, whatever text the model put beside it.
    text = "" if json_tool else "".join(str(b.get("text", "")) for b in blocks if b.get("type") == "text")
    calls = []
    for b in blocks:
        if b.get("type") != "tool_use":
            continue
        arguments = orjson.dumps(b.get("input") or {}).decode()
        if json_tool and b.get("name") == json_tool:
            text = arguments
            continue
        calls.append(
            {"id": b.get("id", ""), "type": "function", "function": {"name": b.get("name", ""), "arguments": arguments}}
        )
    reason = finish_reason(message.get("stop_reason"), call)
    cut = first_stop(text, call.local_stops) if call is not None and call.local_stops else None
    if cut is not None:
        text, calls, reason = text[:cut], [], "stop"
    reply: dict[str, Any] = {"role": "assistant", "content": text or (None if calls else "")}
    if calls:
        reply["tool_calls"] = calls
    return {
        "id": message.get("id", ""),
        "object": "chat.completion",
        "created": int(time.time()),
        "model": message.get("model", ""),
        "choices": [{"index": 0, "message": reply, "finish_reason": reason}],
        "usage": to_usage(message.get("usage") or {}),
    }

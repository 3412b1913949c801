"""What the fake upstream says: deterministic replies, tool calls, embeddings and usage counts.

Replies echo the last user message (or a fixed ``reply``), so a test can predict them::

    >>> reply = chat_reply({"messages": [{"role": "user", "content": "hello there"}]}, None)
    >>> reply.text, reply.finish_reason, reply.completion_tokens
    ('hello there', 'stop', 2)

A "token" is a whitespace-separated word. Tool calls are made when ``tools`` are given and
the last user message names one of them (or ``tool_choice`` forces one); a ``tool`` message
is answered with ``tool said: <its content>``. A ``response_format`` of ``json_object`` or
``json_schema`` gets ``{"echo": <text>}``.

A continuation (vLLM's ``continue_final_message: true`` with ``add_generation_prompt:
false``) finishes the reply that the final assistant message began: the rest of the reply
when the assistant text begins it, otherwise the whole reply again (which a test comparing
texts notices)::

    >>> body = {"messages": [{"role": "user", "content": "one two three"},
    ...                      {"role": "assistant", "content": "one "}], "continue_final_message": True}
    >>> chat_reply(body, None).text
    'two three'
"""

from __future__ import annotations

import base64
import hashlib
import random
import re
import struct
from dataclasses import dataclass, field
from typing import Any

import orjson

_PIECE = re.compile(r"\S+\s*")


def words(text: str) -> int:
    return len(text.split())


def pieces(text: str) -> list[str]:
    """The text cut into streamable tokens that join back to it exactly."""
    lead = text[: len(text) - len(text.lstrip())]
    parts = _PIECE.findall(text)
    if lead and parts:
        parts[0] = lead + parts[0]
    return parts or ([text] if text else [])


def message_text(message: dict[str, Any]) -> str:
    content = message.get("content")
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "".join(str(p.get("text", "")) for p in content if isinstance(p, dict) and p.get("type") == "text")
    return ""


@dataclass
class Reply:
    text: str | None
    finish_reason: str
    prompt_tokens: int
    completion_tokens: int
    tool_calls: list[dict[str, Any]] = field(default_factory=list)

    def message(self) -> dict[str, Any]:
        message: dict[str, Any] = {"role": "assistant", "content": self.text}
        if self.tool_calls:
            message["tool_calls"] = self.tool_calls
        return message

    def usage(self) -> dict[str, int]:
        return {
            "prompt_tokens": self.prompt_tokens,
            "completion_tokens": self.completion_tokens,
            "total_tokens": self.prompt_tokens + self.completion_tokens,
        }


def _limit(text: str, body: dict[str, Any]) -> tuple[str, str]:
    stops = body.get("stop")
    for stop in [stops] if isinstance(stops, str) else stops or []:
        if stop and stop in text:
            text = text[: text.index(stop)]
    limit = body.get("max_completion_tokens") or body.get("max_tokens")
    if isinstance(limit, int) and limit > 0 and words(text) > limit:
        return "".join(pieces(text)[:limit]).rstrip(), "length"
    return text, "stop"


def _argument_value(schema: dict[str, Any], text: str) -> Any:
    kind = schema.get("type")
    if kind == "string":
        return text
    if kind in ("number", "integer"):
        return 1
    if kind == "boolean":
        return True
    if kind == "array":
        return []
    if kind == "object":
        return {}
    return None


def _tool_arguments(function: dict[str, Any], text: str) -> str:
    params = function.get("parameters") or {}
    props = params.get("properties") or {}
    wanted = params.get("required") or list(props)
    args = {name: _argument_value(props.get(name) or {}, text) for name in wanted}
    return orjson.dumps(args).decode()


def _chosen_tool(body: dict[str, Any], text: str) -> dict[str, Any] | None:
    tools = [t.get("function") or {} for t in body.get("tools") or [] if isinstance(t, dict)]
    choice = body.get("tool_choice")
    if not tools or choice == "none":
        return None
    if isinstance(choice, dict):
        name = (choice.get("function") or {}).get("name")
        return next((t for t in tools if t.get("name") == name), None)
    lowered = text.lower()
    named = next((t for t in tools if t.get("name") and str(t["name"]).lower() in lowered), None)
    if named is None and choice == "required":
        return tools[0]
    return named


def continuation_problem(body: dict[str, Any]) -> str | None:
    """Why a ``continue_final_message`` request is invalid (as vLLM refuses it), or None."""
    if not body.get("continue_final_message"):
        return None
    if body.get("add_generation_prompt", True) is not False:
        return "continue_final_message and add_generation_prompt cannot both be true: send add_generation_prompt: false"
    messages = body.get("messages") or []
    if not isinstance(messages[-1], dict) or messages[-1].get("role") != "assistant":
        return "continue_final_message needs the final message to be the assistant's"
    return None


def _continued(body: dict[str, Any], fixed: str | None, messages: list[dict[str, Any]]) -> Reply:
    begun = message_text(messages[-1])
    unlimited = ("messages", "max_tokens", "max_completion_tokens", "stop", "continue_final_message")
    whole = chat_reply({**{k: v for k, v in body.items() if k not in unlimited}, "messages": messages[:-1]}, fixed)
    prompt_tokens = sum(words(message_text(m)) for m in messages)
    if whole.tool_calls:
        whole.prompt_tokens = prompt_tokens
        return whole
    full = whole.text or ""
    text, finish = _limit(full[len(begun) :] if full.startswith(begun) else full, body)
    return Reply(text, finish, prompt_tokens, words(text))


def last_user_text(body: dict[str, Any]) -> str:
    """The text of the last user message of a chat body ('' when there is none)."""
    messages = [m for m in body.get("messages") or [] if isinstance(m, dict)]
    return next((message_text(m) for m in reversed(messages) if m.get("role") == "user"), "")


def chat_reply(body: dict[str, Any], fixed: str | None) -> Reply:
    messages = [m for m in body.get("messages") or [] if isinstance(m, dict)]
    if body.get("continue_final_message") and messages and messages[-1].get("role") == "assistant":
        return _continued(body, fixed, messages)
    prompt_tokens = sum(words(message_text(m)) for m in messages)
    last = messages[-1] if messages else {}
    user_text = next((message_text(m) for m in reversed(messages) if m.get("role") == "user"), "")
    if last.get("role") == "tool":
        text = f"tool said: {message_text(last)}"
    else:
        tool = _chosen_tool(body, user_text)
        if tool is not None:
            arguments = _tool_arguments(tool, user_text)
            call = {
                "id": f"call_{hashlib.sha256(user_text.encode()).hexdigest()[:12]}",
                "type": "function",
                "function": {"name": tool.get("name", ""), "arguments": arguments},
            }
            return Reply(None, "tool_calls", prompt_tokens, words(arguments) + 1, [call])
        text = fixed if fixed is not None else user_text
    fmt = (body.get("response_format") or {}).get("type")
    if fmt in ("json_object", "json_schema"):
        text = orjson.dumps({"echo": text}).decode()
    text, finish = _limit(text, body)
    return Reply(text, finish, prompt_tokens, words(text))


def completion_replies(body: dict[str, Any], fixed: str | None) -> list[Reply]:
    prompt = body.get("prompt", "")
    prompts = [prompt] if isinstance(prompt, str) else [str(p) for p in prompt] if isinstance(prompt, list) else []
    out = []
    for p in prompts or [""]:
        text, finish = _limit(fixed if fixed is not None else p, body)
        out.append(Reply(text, finish, words(p), words(text)))
    return out


def embedding_inputs(body: dict[str, Any]) -> list[str]:
    value = body.get("input")
    if isinstance(value, str):
        return [value]
    if isinstance(value, list) and value and all(isinstance(x, int) for x in value):
        return [" ".join(str(x) for x in value)]
    if isinstance(value, list):
        return [x if isinstance(x, str) else " ".join(str(t) for t in x) for x in value]
    return []


def embedding_vector(text: str, dim: int) -> list[float]:
    """A unit vector that depends only on the text and the dimension."""
    seed = int.from_bytes(hashlib.sha256(text.encode()).digest()[:8], "big")
    rng = random.Random(seed)
    vec = [rng.gauss(0.0, 1.0) for _ in range(dim)]
    norm = sum(v * v for v in vec) ** 0.5 or 1.0
    return [v / norm for v in vec]


def encode_vector(vec: list[float], encoding_format: str | None) -> list[float] | str:
    if encoding_format == "base64":
        return base64.b64encode(struct.pack(f"<{len(vec)}f", *vec)).decode()
    return vec

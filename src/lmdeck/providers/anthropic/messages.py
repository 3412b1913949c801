"""An OpenAI conversation as Anthropic's ``system`` and alternating ``messages``.

    system, turns = conversation(request.messages)

What the OpenAI API accepts and the Messages API refuses is normalised here (the table in
docs/providers.md lists every rule):

- ``system`` and ``developer`` messages, wherever they stand, go to ``system`` in order; a
  conversation of system messages only is sent as one user turn;
- empty and whitespace-only text is dropped, then turns left with no content;
- consecutive turns of one role are merged into one turn; ``tool`` results join the user turn
  that follows the tool calls, ahead of any text in it;
- a conversation that opens with the assistant gets a short user turn first
  (:data:`OPENING_USER_TEXT`);
- a final assistant turn (a prefill) loses its trailing whitespace;
- tool call ids outside ``[A-Za-z0-9_-]`` are rewritten (consistently for calls and results).

More than :data:`MAX_IMAGES` images are refused with a 400 naming ``messages``.

A conversation that is wrong for OpenAI too is refused with a 400 naming the message, as
OpenAI would: a tool result that answers no tool call, a tool call that gets no result,
legacy ``function`` messages, no message with content at all.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass, field
from typing import Any, Literal

import orjson

from lmdeck.protocol.chat import ChatMessage
from lmdeck.providers.anthropic.content import text_blocks, user_blocks
from lmdeck.providers.anthropic.errors import refuse

#: The user turn put ahead of a conversation that opens with the assistant.
OPENING_USER_TEXT = "(conversation start)"
#: The most images one Messages request may carry.
MAX_IMAGES = 100

_TOOL_ID = re.compile(r"^[A-Za-z0-9_-]+$")

Role = Literal["user", "assistant"]


def _object(value: Any) -> dict[str, Any]:
    """``value`` when it is a JSON object, else an empty one."""
    return value if isinstance(value, dict) else {}


@dataclass
class Turn:
    role: Role
    blocks: list[dict[str, Any]] = field(default_factory=list)

    def body(self) -> dict[str, Any]:
        return {"role": self.role, "content": self.blocks}


def tool_use_id(call_id: str) -> str:
    """``call_id`` as Anthropic accepts it: unchanged when valid, else sanitised with a hash to stay unique."""
    if _TOOL_ID.match(call_id):
        return call_id
    digest = hashlib.sha256(call_id.encode()).hexdigest()[:10]
    return f"{re.sub(r'[^A-Za-z0-9_-]', '_', call_id)[:48]}_{digest}"


def _arguments(raw: Any) -> dict[str, Any]:
    if isinstance(raw, dict):
        return raw
    try:
        parsed = orjson.loads(raw) if isinstance(raw, str) and raw.strip() else {}
    except orjson.JSONDecodeError:
        return {"arguments": raw}
    return parsed if isinstance(parsed, dict) else {"arguments": parsed}


class _ToolLedger:
    """Which tool calls of the latest assistant message are still waiting for their results."""

    def __init__(self) -> None:
        self.open: dict[str, int] = {}  # call id -> index of the assistant message
        self.answered: set[str] = set()

    def calls(self, index: int, calls: list[dict[str, Any]]) -> list[dict[str, Any]]:
        self.close()
        blocks = []
        for j, call in enumerate(calls):
            at = f"messages.{index}.tool_calls.{j}"
            call_id = call.get("id")
            if not isinstance(call_id, str) or not call_id:
                raise refuse(f"{at}.id", f"{at}.id is required", code="invalid_value")
            function = _object(call.get("function"))
            name = function.get("name")
            if not isinstance(name, str) or not name:
                raise refuse(f"{at}.function.name", f"{at}.function.name is required", code="invalid_value")
            self.open[call_id] = index
            blocks.append(
                {
                    "type": "tool_use",
                    "id": tool_use_id(call_id),
                    "name": name,
                    "input": _arguments(function.get("arguments")),
                }
            )
        return blocks

    def result(self, index: int, message: ChatMessage) -> dict[str, Any]:
        call_id = message.tool_call_id
        if not call_id or call_id not in self.open:
            raise refuse(
                f"messages.{index}.tool_call_id",
                f"messages.{index}: a tool message must answer a tool call of the assistant message before it "
                f"(no call {call_id!r}); send the assistant message with its tool_calls first",
                code="invalid_value",
            )
        if call_id in self.answered:
            raise refuse(
                f"messages.{index}.tool_call_id",
                f"messages.{index}: tool call {call_id!r} already has a result",
                code="invalid_value",
            )
        self.answered.add(call_id)
        result: dict[str, Any] = {"type": "tool_result", "tool_use_id": tool_use_id(call_id)}
        content = text_blocks(message.content, f"messages.{index}")
        if content:
            result["content"] = content
        return result

    def close(self) -> None:
        missing = [c for c in self.open if c not in self.answered]
        if missing:
            index = self.open[missing[0]]
            raise refuse(
                f"messages.{index}.tool_calls",
                f"messages.{index}: an assistant message with tool_calls must be followed by tool messages "
                f"answering each call; no result for {', '.join(missing)}",
                code="invalid_value",
            )
        self.open, self.answered = {}, set()


def _merged(turns: list[Turn]) -> list[Turn]:
    out: list[Turn] = []
    for turn in turns:
        if not turn.blocks:
            continue
        if out and out[-1].role == turn.role:
            out[-1].blocks.extend(turn.blocks)
        else:
            out.append(Turn(turn.role, list(turn.blocks)))
    for turn in out:
        if turn.role == "user":
            # Anthropic wants a user turn's tool results ahead of anything else in it.
            turn.blocks.sort(key=lambda b: b.get("type") != "tool_result")
    return out


def _strip_prefill(turns: list[Turn]) -> None:
    """Anthropic refuses a final assistant turn ending in whitespace: strip it, dropping what empties."""
    while turns and turns[-1].role == "assistant":
        blocks = turns[-1].blocks
        while blocks and blocks[-1].get("type") == "text":
            text = str(blocks[-1]["text"]).rstrip()
            if text:
                blocks[-1] = {**blocks[-1], "text": text}
                return
            blocks.pop()
        if blocks:
            return
        turns.pop()


def conversation(messages: list[ChatMessage]) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """(system text blocks, alternating turns starting with user) for an OpenAI message list.

    Raises :class:`~lmdeck.protocol.APIError` (400, naming the message) for a conversation
    that cannot be sent.
    """
    system: list[dict[str, Any]] = []
    turns: list[Turn] = []
    tools = _ToolLedger()
    for i, message in enumerate(messages):
        where = f"messages.{i}"
        if message.role in ("system", "developer"):
            system += text_blocks(message.content, where)
        elif message.role == "function":
            raise refuse(
                f"{where}.role",
                f"{where}: legacy 'function' messages are not supported for anthropic; use tool_calls and 'tool' messages",
            )
        elif message.role == "tool":
            turns.append(Turn("user", [tools.result(i, message)]))
        elif message.role == "user":
            turns.append(Turn("user", user_blocks(message.content, where)))
        else:
            if (message.model_extra or {}).get("function_call"):
                raise refuse(
                    f"{where}.function_call", f"{where}: legacy function_call is not supported; use tool_calls"
                )
            blocks = text_blocks(message.content, where, refusal=True)
            if message.tool_calls:
                blocks += tools.calls(i, message.tool_calls)
            else:
                tools.close()
            turns.append(Turn("assistant", blocks))
    tools.close()
    images = sum(1 for t in turns for b in t.blocks if b.get("type") == "image")
    if images > MAX_IMAGES:
        raise refuse(
            "messages", f"anthropic takes at most {MAX_IMAGES} images per request, not {images}", code="invalid_value"
        )
    merged = _merged(turns)
    if not merged:
        if not system:
            raise refuse("messages", "messages: send at least one message with content", code="invalid_value")
        merged, system = [Turn("user", system)], []
    if merged[0].role == "assistant":
        merged.insert(0, Turn("user", [{"type": "text", "text": OPENING_USER_TEXT}]))
    _strip_prefill(merged)
    return system, [t.body() for t in merged]

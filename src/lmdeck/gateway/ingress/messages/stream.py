"""A streamed chat completion translated into Anthropic's stream of Messages events.

    translator = MessageEvents(message_id, body)
    async for name, event in translator.events(chunks):   # ("message_start", {...}), ...
        ...

The order is Anthropic's: ``message_start`` (usage still zero), ``ping``; per content block
``content_block_start``, its deltas (``text_delta`` for text, ``input_json_delta`` for a tool's
input), ``content_block_stop``; then ``message_delta`` (``stop_reason``, ``stop_sequence`` and the
usage, input tokens included, once the chat stream has reported it) and ``message_stop``.

Text streams as it comes. Anthropic's blocks follow one another, never interleaved, while a chat
stream may interleave parallel tool calls by ``index``: each tool call's block is therefore sent
whole (start, one ``input_json_delta`` with its arguments, stop) once the chat stream ends, after
the text. Empty deltas are dropped; a UTF-16 surrogate pair split across chunks is held back
until whole. A failure of the chat stream ends the events with an ``error`` event in Anthropic's
error shape, after which nothing follows (as Anthropic's own streams end).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any

import orjson
from pydantic import BaseModel

from lmdeck.gateway.ingress.messages.errors import error_event
from lmdeck.gateway.ingress.messages.response import stop_of, usage_of
from lmdeck.gateway.ingress.responses.stream import split_surrogate
from lmdeck.protocol.chat import ChatCompletionChunk, Usage
from lmdeck.protocol.messages import Message, MessagesRequest

Event = tuple[str, dict[str, Any]]


def sse(name: str, event: dict[str, Any]) -> bytes:
    """One server-sent event: ``event:`` and ``data:`` lines."""
    return b"event: " + name.encode() + b"\ndata: " + orjson.dumps(event) + b"\n\n"


@dataclass
class ToolCall:
    """A tool call being gathered from the chat stream."""

    call_id: str = ""
    name: str = ""
    arguments: str = ""


@dataclass
class MessageEvents:
    """Translates one chat stream into Messages events (see the module docs)."""

    message_id: str
    body: MessagesRequest
    on_error: Callable[[BaseException], dict[str, Any]] = field(default=error_event)
    index: int = 0
    text_open: bool = False
    held: str = ""
    calls: dict[int, ToolCall] = field(default_factory=dict)
    finish_reason: str | None = None
    choice: dict[str, Any] = field(default_factory=dict)
    usage: Usage | None = None

    def start(self) -> list[Event]:
        shell = Message(id=self.message_id, model=self.body.model)
        return [("message_start", {"type": "message_start", "message": shell.model_dump()}), ("ping", {"type": "ping"})]

    def text(self, delta: str) -> list[Event]:
        whole, self.held = split_surrogate(self.held + delta)
        if not whole:
            return []
        events: list[Event] = []
        if not self.text_open:
            self.text_open = True
            block = {"type": "text", "text": ""}
            events.append(
                ("content_block_start", {"type": "content_block_start", "index": self.index, "content_block": block})
            )
        delta_event = {"type": "text_delta", "text": whole}
        events.append(
            ("content_block_delta", {"type": "content_block_delta", "index": self.index, "delta": delta_event})
        )
        return events

    def close_text(self) -> list[Event]:
        if not self.text_open:
            return []
        self.text_open = False
        stop = {"type": "content_block_stop", "index": self.index}
        self.index += 1
        return [("content_block_stop", stop)]

    def gather(self, call: dict[str, Any]) -> None:
        gathered = self.calls.setdefault(int(call.get("index", 0) or 0), ToolCall())
        function = call.get("function") or {}
        if call.get("id") and not gathered.call_id:
            gathered.call_id = str(call["id"])
        if function.get("name"):
            gathered.name += str(function["name"])
        if function.get("arguments"):
            gathered.arguments += str(function["arguments"])

    def chunk(self, chunk: BaseModel) -> list[Event]:
        assert isinstance(chunk, ChatCompletionChunk)
        if chunk.usage is not None:
            self.usage = chunk.usage
        events: list[Event] = []
        for choice in chunk.choices:
            if choice.get("index", 0) != 0:
                continue
            delta = choice.get("delta") or {}
            content = delta.get("content")
            if isinstance(content, str) and content:
                events += self.text(content)
            for call in delta.get("tool_calls") or []:
                self.gather(call)
            if choice.get("finish_reason"):
                self.finish_reason = choice["finish_reason"]
                self.choice = choice
        return events

    def tool_blocks(self) -> list[Event]:
        events: list[Event] = []
        for position in sorted(self.calls):
            call = self.calls[position]
            block = {"type": "tool_use", "id": call.call_id or f"toolu_{self.message_id}_{position}", "name": call.name}
            events.append(
                (
                    "content_block_start",
                    {"type": "content_block_start", "index": self.index, "content_block": {**block, "input": {}}},
                )
            )
            if call.arguments:
                delta = {"type": "input_json_delta", "partial_json": call.arguments}
                events.append(
                    ("content_block_delta", {"type": "content_block_delta", "index": self.index, "delta": delta})
                )
            events.append(("content_block_stop", {"type": "content_block_stop", "index": self.index}))
            self.index += 1
        return events

    def finish(self) -> list[Event]:
        events = self.close_text() + self.tool_blocks()
        reason, sequence = stop_of(self.finish_reason or "stop", self.choice, self.body.stop_sequences)
        if self.calls and reason == "end_turn":
            reason = "tool_use"
        usage = usage_of(self.usage).model_dump()
        delta = {"type": "message_delta", "delta": {"stop_reason": reason, "stop_sequence": sequence}, "usage": usage}
        return [*events, ("message_delta", delta), ("message_stop", {"type": "message_stop"})]

    async def events(self, chunks: AsyncIterator[BaseModel]) -> AsyncIterator[Event]:
        """Every event of the message, from ``message_start`` to ``message_stop`` (or ``error``)."""
        for event in self.start():
            yield event
        try:
            async for chunk in chunks:
                for event in self.chunk(chunk):
                    yield event
        except Exception as exc:
            yield "error", self.on_error(exc)
            return
        for event in self.finish():
            yield event

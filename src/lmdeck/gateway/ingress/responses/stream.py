"""A streamed chat completion translated into the Responses API's stream of events.

    translator = ResponseEvents(shell_response)
    async for event in translator.events(chunks):     # dicts, each with ``type`` and ``sequence_number``
        ...
    translator.response                               # the finished response (status, output, usage)

The order is OpenAI's: ``response.created``, ``response.in_progress``; per output item
``response.output_item.added``, then for text ``response.content_part.added``,
``response.output_text.delta``…, ``response.output_text.done``, ``response.content_part.done``, and for
a function call ``response.function_call_arguments.delta``…, ``response.function_call_arguments.done``;
then ``response.output_item.done``; last ``response.completed`` (or ``response.incomplete`` when cut at
``max_output_tokens``) with usage. Items open when first seen (tool calls interleaved by ``index``
each get their own item) and close, in ``output_index`` order, when the chat stream ends. A failure of
the chat stream ends the events with ``error`` and ``response.failed``, whose ``response.error`` says
what failed. Empty deltas are dropped; a UTF-16 surrogate pair split across chunks (a character
outside the BMP sent as two JSON escapes) is held back until whole.
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any

from pydantic import BaseModel

from lmdeck.gateway.ingress.responses.response import finish, function_call_item, message_item, new_id, usage_of
from lmdeck.protocol.chat import ChatCompletionChunk, Usage
from lmdeck.protocol.responses import ResponseObject
from lmdeck.protocol.wire import wire_dict

SURROGATE = re.compile("[\ud800-\udfff]")


def split_surrogate(text: str) -> tuple[str, str]:
    """``text`` less a trailing high surrogate (half of a character still to come), and that half; the
    halves of a pair joined into their character, and a lone half (never valid UTF-8) made U+FFFD."""
    held = ""
    if text and "\ud800" <= text[-1] <= "\udbff":
        text, held = text[:-1], text[-1]
    if SURROGATE.search(text):
        text = text.encode("utf-16-le", "surrogatepass").decode("utf-16-le", "replace")
    return text, held


@dataclass
class OpenItem:
    """An output item being streamed: its index, id, and what has arrived so far."""

    output_index: int
    item_id: str
    kind: str  # "message" or "function_call"
    text: str = ""
    held: str = ""
    call_id: str = ""
    name: str = ""


@dataclass
class ResponseEvents:
    """Translates one chat stream into Responses events (see the module docs)."""

    response: ResponseObject
    on_error: Callable[[Exception], dict[str, Any]] = field(
        default=lambda exc: {"code": "server_error", "message": str(exc)}
    )
    sequence: int = 0
    items: list[OpenItem] = field(default_factory=list)
    text_item: OpenItem | None = None
    calls: dict[int, OpenItem] = field(default_factory=dict)
    finish_reason: str | None = None
    usage: Usage | None = None

    def event(self, kind: str, **fields: Any) -> dict[str, Any]:
        payload = {"type": kind, "sequence_number": self.sequence, **fields}
        self.sequence += 1
        return payload

    def snapshot(self) -> dict[str, Any]:
        return wire_dict(self.response)

    def open_text(self) -> list[dict[str, Any]]:
        item = OpenItem(len(self.items), new_id("msg"), "message")
        self.items.append(item)
        self.text_item = item
        added = message_item("", item.item_id, "in_progress")
        added["content"] = []
        part = {"type": "output_text", "text": "", "annotations": [], "logprobs": []}
        return [
            self.event("response.output_item.added", output_index=item.output_index, item=added),
            self.event(
                "response.content_part.added",
                item_id=item.item_id,
                output_index=item.output_index,
                content_index=0,
                part=part,
            ),
        ]

    def text_delta(self, delta: str) -> list[dict[str, Any]]:
        events = self.open_text() if self.text_item is None else []
        item = self.text_item
        assert item is not None
        whole, item.held = split_surrogate(item.held + delta)
        if not whole:
            return events
        item.text += whole
        events.append(
            self.event(
                "response.output_text.delta",
                item_id=item.item_id,
                output_index=item.output_index,
                content_index=0,
                delta=whole,
                logprobs=[],
            )
        )
        return events

    def call_delta(self, call: dict[str, Any]) -> list[dict[str, Any]]:
        index = call.get("index", 0)
        function = call.get("function") or {}
        events: list[dict[str, Any]] = []
        item = self.calls.get(index)
        if item is None:
            item = OpenItem(len(self.items), new_id("fc"), "function_call")
            item.call_id = str(call.get("id") or new_id("call"))
            item.name = str(function.get("name") or "")
            self.items.append(item)
            self.calls[index] = item
            added = function_call_item(item.call_id, item.name, "", item.item_id, "in_progress")
            events.append(self.event("response.output_item.added", output_index=item.output_index, item=added))
        elif function.get("name"):
            item.name += str(function["name"])
        arguments = str(function.get("arguments") or "")
        if arguments:
            item.text += arguments
            events.append(
                self.event(
                    "response.function_call_arguments.delta",
                    item_id=item.item_id,
                    output_index=item.output_index,
                    delta=arguments,
                )
            )
        return events

    def chunk_events(self, chunk: BaseModel) -> list[dict[str, Any]]:
        assert isinstance(chunk, ChatCompletionChunk)
        if chunk.usage is not None:
            self.usage = chunk.usage
        events: list[dict[str, Any]] = []
        for choice in chunk.choices:
            if choice.get("index", 0) != 0:
                continue
            delta = choice.get("delta") or {}
            content = delta.get("content")
            if isinstance(content, str) and content:
                events += self.text_delta(content)
            for call in delta.get("tool_calls") or []:
                events += self.call_delta(call)
            if choice.get("finish_reason"):
                self.finish_reason = choice["finish_reason"]
        return events

    def close_item(self, item: OpenItem) -> list[dict[str, Any]]:
        if item.kind == "function_call":
            done = function_call_item(item.call_id, item.name, item.text, item.item_id)
            self.response.output.append(done)
            return [
                self.event(
                    "response.function_call_arguments.done",
                    item_id=item.item_id,
                    output_index=item.output_index,
                    name=item.name,
                    arguments=item.text,
                ),
                self.event("response.output_item.done", output_index=item.output_index, item=done),
            ]
        # A half character the stream never completed is dropped: it has no UTF-8 form to send.
        done = message_item(item.text, item.item_id)
        self.response.output.append(done)
        part = done["content"][0]
        return [
            self.event(
                "response.output_text.done",
                item_id=item.item_id,
                output_index=item.output_index,
                content_index=0,
                text=item.text,
                logprobs=[],
            ),
            self.event(
                "response.content_part.done",
                item_id=item.item_id,
                output_index=item.output_index,
                content_index=0,
                part=part,
            ),
            self.event("response.output_item.done", output_index=item.output_index, item=done),
        ]

    def completion_events(self) -> list[dict[str, Any]]:
        events: list[dict[str, Any]] = []
        if not self.items:
            events += self.open_text()
        for item in self.items:
            events += self.close_item(item)
        self.response.usage = usage_of(self.usage)
        finish(self.response, self.finish_reason)
        kind = "response.incomplete" if self.response.status == "incomplete" else "response.completed"
        return [*events, self.event(kind, response=self.snapshot())]

    def failure_events(self, exc: Exception) -> list[dict[str, Any]]:
        error = self.on_error(exc)
        self.response.status = "failed"
        self.response.error = {"code": error.get("code") or "server_error", "message": error.get("message", "")}
        self.response.usage = usage_of(self.usage)
        return [
            self.event("error", code=error.get("code"), message=error.get("message", ""), param=error.get("param")),
            self.event("response.failed", response=self.snapshot()),
        ]

    async def events(self, chunks: AsyncIterator[BaseModel]) -> AsyncIterator[dict[str, Any]]:
        """Every event of the response, from ``response.created`` to its terminal event."""
        yield self.event("response.created", response=self.snapshot())
        yield self.event("response.in_progress", response=self.snapshot())
        try:
            async for chunk in chunks:
                for event in self.chunk_events(chunk):
                    yield event
        except Exception as exc:
            for event in self.failure_events(exc):
                yield event
            return
        for event in self.completion_events():
            yield event

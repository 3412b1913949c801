"""Anthropic stream events as OpenAI chunks, one event at a time.

    translator = StreamTranslator(call)
    for chunk in translator.feed(event_name, event):   # OpenAI chunk payloads (dicts)
        ...
    translator.finished                                  # True once the answer is complete

Nothing is emitted until the answer has content (text, a tool call) or its end: the
``message_start`` event only opens the message, and the assistant ``role`` rides on the first
chunk that carries something. So an ``error`` event that arrives before any content (an
``overloaded_error`` right after ``message_start``) is raised before the gateway has a chunk
to hand on, and is retried and falls back exactly like an HTTP 529.

Whitespace-only stop sequences (which Anthropic refuses) are applied here: text is held back
while it could be the start of one, and once one occurs the answer ends with ``finish_reason``
``stop``; the caller then closes the upstream stream.
"""

from __future__ import annotations

import time
from typing import Any

from lmdeck.providers.anthropic.errors import stream_error
from lmdeck.providers.anthropic.request import MessagesCall
from lmdeck.providers.anthropic.response import finish_reason, first_stop, to_usage


class StopScanner:
    """Passes text through until one of ``stops`` occurs, holding back a possible partial match.

    >>> s = StopScanner(["\\n\\n"])
    >>> s.feed("one\\n"), s.feed("\\ntwo"), s.stopped
    ('one', '', True)
    """

    def __init__(self, stops: list[str]) -> None:
        self.stops = stops
        self.held = ""
        self.stopped = False

    def feed(self, text: str) -> str:
        if self.stopped or not self.stops:
            return "" if self.stopped else text
        buffer = self.held + text
        cut = first_stop(buffer, self.stops)
        if cut is not None:
            self.held, self.stopped = "", True
            return buffer[:cut]
        keep = max((n for s in self.stops for n in range(len(s) - 1, 0, -1) if buffer.endswith(s[:n])), default=0)
        self.held = buffer[len(buffer) - keep :] if keep else ""
        return buffer[: len(buffer) - keep]

    def flush(self) -> str:
        held, self.held = self.held, ""
        return held


class StreamTranslator:
    """Turns Anthropic stream events into OpenAI chunk payloads.

    >>> t = StreamTranslator()
    >>> t.feed("message_start", {"message": {"id": "m1", "model": "c", "usage": {"input_tokens": 3}}})
    []
    >>> t.feed("content_block_delta", {"index": 0, "delta": {"type": "text_delta", "text": "hi"}})[0]["choices"]
    [{'index': 0, 'delta': {'role': 'assistant', 'content': 'hi'}, 'finish_reason': None}]
    """

    def __init__(self, call: MessagesCall | None = None) -> None:
        self.call = call or MessagesCall(body={})
        self.id = ""
        self.model = ""
        self.created = int(time.time())
        self.usage: dict[str, Any] = {}
        self.tool_index: dict[int, int] = {}
        self.json_blocks: set[int] = set()
        self.json_text_blocks: set[int] = set()
        self.scanner = StopScanner(self.call.local_stops)
        self.role_sent = False
        self.pieces = 0
        self.finished = False

    def _chunk(self, delta: dict[str, Any], finish: str | None = None) -> dict[str, Any]:
        if not self.role_sent:
            delta = {"role": "assistant", **delta}
            self.role_sent = True
        return {
            "id": self.id,
            "object": "chat.completion.chunk",
            "created": self.created,
            "model": self.model,
            "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
        }

    def _usage_chunk(self) -> dict[str, Any]:
        chunk = {"id": self.id, "object": "chat.completion.chunk", "created": self.created, "model": self.model}
        return {**chunk, "choices": [], "usage": to_usage(self.usage)}

    def _text(self, text: str) -> list[dict[str, Any]]:
        self.pieces += 1
        out = self.scanner.feed(text)
        chunks = [self._chunk({"content": out})] if out else []
        if self.scanner.stopped:
            # The answer ends here: usage so far (output estimated from the pieces received).
            self.usage["output_tokens"] = max(int(self.usage.get("output_tokens") or 0), self.pieces)
            chunks += [self._chunk({}, "stop"), self._usage_chunk()]
            self.finished = True
        return chunks

    def _flush(self) -> list[dict[str, Any]]:
        held = self.scanner.flush()
        return [self._chunk({"content": held})] if held else []

    def feed(self, kind: str, event: dict[str, Any]) -> list[dict[str, Any]]:
        if self.finished:
            return []
        if kind == "message_start":
            message = event.get("message") or {}
            self.id, self.model = message.get("id", ""), message.get("model", "")
            self.usage = dict(message.get("usage") or {})
            return []
        if kind == "content_block_start":
            return self._block_start(int(event.get("index", 0)), event.get("content_block") or {})
        if kind == "content_block_delta":
            return self._delta(int(event.get("index", 0)), event.get("delta") or {})
        if kind == "content_block_stop":
            return self._flush()
        if kind == "message_delta":
            self.usage.update({k: v for k, v in (event.get("usage") or {}).items() if v is not None})
            reason = (event.get("delta") or {}).get("stop_reason")
            if not reason:
                return []
            return [*self._flush(), self._chunk({}, finish_reason(reason, self.call))]
        if kind == "message_stop":
            self.finished = True
            return [*self._flush(), self._usage_chunk()]
        if kind == "error":
            raise stream_error(event)
        return []

    def _block_start(self, index: int, block: dict[str, Any]) -> list[dict[str, Any]]:
        if block.get("type") == "tool_use":
            if self.call.json_tool and block.get("name") == self.call.json_tool:
                self.json_blocks.add(index)
                return []
            position = self.tool_index.setdefault(index, len(self.tool_index))
            call = {"index": position, "id": block.get("id", ""), "type": "function"}
            call["function"] = {"name": block.get("name", ""), "arguments": ""}
            return [self._chunk({"tool_calls": [call]})]
        if block.get("type") == "text" and self.call.json_tool:
            self.json_text_blocks.add(index)  # the answer is the forced tool's input, not any text beside it
            return []
        if block.get("type") == "text" and block.get("text"):
            return self._text(str(block["text"]))
        return []

    def _delta(self, index: int, delta: dict[str, Any]) -> list[dict[str, Any]]:
        if delta.get("type") == "text_delta":
            if index in self.json_text_blocks:
                return []
            text = str(delta.get("text", ""))
            return self._text(text) if text else []
        if delta.get("type") == "input_json_delta":
            partial = str(delta.get("partial_json", ""))
            if not partial:
                return []
            if index in self.json_blocks:
                return self._text(partial)
            call = {"index": self.tool_index.get(index, 0), "function": {"arguments": partial}}
            return [self._chunk({"tool_calls": [call]})]
        return []

"""Anthropic's Messages API, translated to and from OpenAI's chat shapes.

    routes:
      - name: claude
        targets:
          - provider: anthropic
            model: claude-sonnet-4-5
            api_key: {"$env": "ANTHROPIC_API_KEY"}
            options: {max_tokens: 4096, anthropic_version: "2023-06-01"}

What is translated:

- system and developer messages → ``system``; consecutive messages of one role are merged,
  since Anthropic wants user and assistant turns to alternate;
- ``tools`` → ``input_schema`` tools; ``tool_choice`` auto/required/none/named → auto/any/none/tool;
  assistant ``tool_calls`` → ``tool_use`` blocks; ``tool`` messages → ``tool_result`` blocks;
- ``stop`` → ``stop_sequences``; ``max_tokens`` defaults to ``options.max_tokens`` (4096),
  which Anthropic requires; ``temperature`` is capped at 1; ``user`` → ``metadata.user_id``;
- answers: text and ``tool_use`` blocks → ``content`` and ``tool_calls``; stop reasons →
  ``finish_reason``; usage (cache reads included in ``prompt_tokens``);
- streams: message_start, content_block_start/delta, message_delta and message_stop become
  OpenAI chunks, ending with a usage-only chunk.

``/v1/completions`` and ``/v1/embeddings`` are not offered by Anthropic and answer 400; so does
any chat parameter outside :data:`CHAT_PARAMS` (``logprobs``, ``response_format``, ``seed``...).
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Mapping
from typing import Any

import orjson

from lmdeck.protocol import (
    ChatCompletionChunk,
    ChatCompletionRequest,
    ChatCompletionResponse,
    CompletionRequest,
    CompletionResponse,
    EmbeddingRequest,
    EmbeddingResponse,
)
from lmdeck.protocol.chat import ChatMessage
from lmdeck.providers.base import ProviderContext, UnsupportedOperation, UpstreamError
from lmdeck.providers.capabilities import Capabilities
from lmdeck.providers.openai import error_from_response, json_object, parse_as, sse_data
from lmdeck.providers.registry import ProviderRegistry
from lmdeck.providers.transport import Timeout
from lmdeck.settings import TargetConfig

DEFAULT_BASE_URL = "https://api.anthropic.com"
ANTHROPIC_VERSION = "2023-06-01"
DEFAULT_MAX_TOKENS = 4096

FINISH_REASONS: dict[str, str] = {
    "end_turn": "stop",
    "stop_sequence": "stop",
    "pause_turn": "stop",
    "max_tokens": "length",
    "tool_use": "tool_calls",
    "refusal": "content_filter",
}

#: The chat parameters translated to the Messages API (``n`` only as 1); anything else is refused.
CHAT_PARAMS = frozenset(
    {
        "max_tokens",
        "max_completion_tokens",
        "temperature",
        "top_p",
        "stop",
        "tools",
        "tool_choice",
        "n",
        "stream_options.include_usage",
    }
)
CAPABILITIES = Capabilities({"chat": CHAT_PARAMS})

#: Anthropic's "overloaded" status, retryable like a 503.
OVERLOADED = 529


def _image_block(part: dict[str, Any]) -> dict[str, Any]:
    url = str((part.get("image_url") or {}).get("url", ""))
    if url.startswith("data:") and ";base64," in url:
        media_type, _, data = url[5:].partition(";base64,")
        return {"type": "image", "source": {"type": "base64", "media_type": media_type, "data": data}}
    return {"type": "image", "source": {"type": "url", "url": url}}


def _content_blocks(content: str | list[dict[str, Any]] | None) -> list[dict[str, Any]]:
    if content is None:
        return []
    if isinstance(content, str):
        return [{"type": "text", "text": content}] if content else []
    blocks = []
    for part in content:
        if part.get("type") == "text":
            blocks.append({"type": "text", "text": str(part.get("text", ""))})
        elif part.get("type") == "image_url":
            blocks.append(_image_block(part))
    return blocks


def _tool_use(call: dict[str, Any]) -> dict[str, Any]:
    function = call.get("function") or {}
    raw = function.get("arguments") or "{}"
    try:
        arguments = orjson.loads(raw) if isinstance(raw, str) else raw
    except orjson.JSONDecodeError:
        arguments = {"arguments": raw}
    return {"type": "tool_use", "id": call.get("id", ""), "name": function.get("name", ""), "input": arguments}


def _turn(message: ChatMessage) -> tuple[str, list[dict[str, Any]]]:
    if message.role == "tool" or message.role == "function":
        result = {
            "type": "tool_result",
            "tool_use_id": message.tool_call_id or message.name or "",
            "content": message.text(),
        }
        return "user", [result]
    blocks = _content_blocks(message.content)
    if message.role == "assistant":
        blocks += [_tool_use(c) for c in message.tool_calls or []]
    return ("assistant" if message.role == "assistant" else "user"), blocks


def _tool_choice(choice: str | dict[str, Any]) -> dict[str, Any]:
    if isinstance(choice, dict):
        return {"type": "tool", "name": (choice.get("function") or {}).get("name", "")}
    return {"type": {"required": "any", "none": "none"}.get(choice, "auto")}


def to_messages_request(request: ChatCompletionRequest, model: str, default_max_tokens: int) -> dict[str, Any]:
    """The Anthropic Messages body for an OpenAI chat request."""
    if request.n is not None and request.n > 1:
        raise UpstreamError(400, "anthropic does not support n > 1: send one request per choice", retryable=False)
    system: list[str] = []
    turns: list[dict[str, Any]] = []
    for message in request.messages:
        if message.role in ("system", "developer"):
            system.append(message.text())
            continue
        role, blocks = _turn(message)
        if turns and turns[-1]["role"] == role:
            turns[-1]["content"].extend(blocks)
        else:
            turns.append({"role": role, "content": blocks})
    body: dict[str, Any] = {
        "model": model,
        "messages": turns,
        "max_tokens": request.token_limit() or default_max_tokens,
    }
    if system:
        body["system"] = "\n\n".join(system)
    if request.stop_list():
        body["stop_sequences"] = request.stop_list()
    if request.temperature is not None:
        body["temperature"] = min(request.temperature, 1.0)
    if request.top_p is not None:
        body["top_p"] = request.top_p
    if request.tools:
        body["tools"] = [
            {
                "name": (t.get("function") or {}).get("name", ""),
                "description": (t.get("function") or {}).get("description", ""),
                "input_schema": (t.get("function") or {}).get("parameters") or {"type": "object", "properties": {}},
            }
            for t in request.tools
            if t.get("type", "function") == "function"
        ]
        if request.tool_choice is not None:
            body["tool_choice"] = _tool_choice(request.tool_choice)
    if request.user:
        body["metadata"] = {"user_id": request.user}
    if request.stream:
        body["stream"] = True
    return body


def to_usage(usage: dict[str, Any]) -> dict[str, Any]:
    cached = int(usage.get("cache_read_input_tokens") or 0)
    prompt = int(usage.get("input_tokens") or 0) + cached + int(usage.get("cache_creation_input_tokens") or 0)
    completion = int(usage.get("output_tokens") or 0)
    return {
        "prompt_tokens": prompt,
        "completion_tokens": completion,
        "total_tokens": prompt + completion,
        "prompt_tokens_details": {"cached_tokens": cached},
    }


def to_chat_response(message: dict[str, Any]) -> dict[str, Any]:
    """An OpenAI chat completion for an Anthropic message."""
    text = "".join(b.get("text", "") for b in message.get("content") or [] if b.get("type") == "text")
    calls = [
        {
            "id": b.get("id", ""),
            "type": "function",
            "function": {"name": b.get("name", ""), "arguments": orjson.dumps(b.get("input") or {}).decode()},
        }
        for b in message.get("content") or []
        if b.get("type") == "tool_use"
    ]
    reply: dict[str, Any] = {"role": "assistant", "content": text or (None if calls else "")}
    if calls:
        reply["tool_calls"] = calls
    return {
        "id": message.get("id", ""),
        "object": "chat.completion",
        "created": int(time.time()),
        "model": message.get("model", ""),
        "choices": [
            {"index": 0, "message": reply, "finish_reason": FINISH_REASONS.get(str(message.get("stop_reason")), "stop")}
        ],
        "usage": to_usage(message.get("usage") or {}),
    }


class StreamTranslator:
    """Turns Anthropic stream events into OpenAI chunk payloads, one event at a time.

    >>> t = StreamTranslator()
    >>> t.feed("message_start", {"message": {"id": "m1", "model": "c", "usage": {"input_tokens": 3}}})[0]["choices"]
    [{'index': 0, 'delta': {'role': 'assistant', 'content': ''}, 'finish_reason': None}]
    """

    def __init__(self) -> None:
        self.id = ""
        self.model = ""
        self.created = int(time.time())
        self.usage: dict[str, Any] = {}
        self.tool_index: dict[int, int] = {}

    def _chunk(self, delta: dict[str, Any], finish: str | None = None) -> dict[str, Any]:
        return {
            "id": self.id,
            "object": "chat.completion.chunk",
            "created": self.created,
            "model": self.model,
            "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
        }

    def feed(self, kind: str, event: dict[str, Any]) -> list[dict[str, Any]]:
        if kind == "message_start":
            message = event.get("message") or {}
            self.id, self.model = message.get("id", ""), message.get("model", "")
            self.usage = dict(message.get("usage") or {})
            return [self._chunk({"role": "assistant", "content": ""})]
        if kind == "content_block_start":
            block = event.get("content_block") or {}
            if block.get("type") == "tool_use":
                position = self.tool_index.setdefault(int(event.get("index", 0)), len(self.tool_index))
                call = {"index": position, "id": block.get("id", ""), "type": "function"}
                call["function"] = {"name": block.get("name", ""), "arguments": ""}
                return [self._chunk({"tool_calls": [call]})]
            if block.get("type") == "text" and block.get("text"):
                return [self._chunk({"content": block["text"]})]
            return []
        if kind == "content_block_delta":
            delta = event.get("delta") or {}
            if delta.get("type") == "text_delta":
                return [self._chunk({"content": delta.get("text", "")})]
            if delta.get("type") == "input_json_delta":
                position = self.tool_index.get(int(event.get("index", 0)), 0)
                call = {"index": position, "function": {"arguments": delta.get("partial_json", "")}}
                return [self._chunk({"tool_calls": [call]})]
            return []
        if kind == "message_delta":
            self.usage.update({k: v for k, v in (event.get("usage") or {}).items() if v is not None})
            reason = (event.get("delta") or {}).get("stop_reason")
            return [self._chunk({}, FINISH_REASONS.get(str(reason), "stop"))] if reason else []
        if kind == "message_stop":
            usage_chunk = self._chunk({})
            usage_chunk["choices"] = []
            usage_chunk["usage"] = to_usage(self.usage)
            return [usage_chunk]
        if kind == "error":
            error = event.get("error") or {}
            status = OVERLOADED if error.get("type") == "overloaded_error" else 502
            raise UpstreamError(status, f"anthropic stream failed: {error.get('message', error)}", retryable=False)
        return []


class AnthropicProvider:
    """Chat through Anthropic's Messages API (``POST {base_url}/v1/messages``)."""

    def __init__(self, target: TargetConfig, ctx: ProviderContext) -> None:
        self.target = target
        self.transport = ctx.transport
        base = (target.base_url or DEFAULT_BASE_URL).rstrip("/")
        self.url = base + ("/messages" if base.endswith("/v1") else "/v1/messages")
        self.headers = {
            "content-type": "application/json",
            "anthropic-version": str(target.options.get("anthropic_version", ANTHROPIC_VERSION)),
            **target.headers,
        }
        if target.api_key is not None:
            self.headers["x-api-key"] = target.api_key.resolve()
        self.max_tokens = int(target.options.get("max_tokens", DEFAULT_MAX_TOKENS))
        self.timeout = Timeout.for_target(target.timeout)

    def _error(self, status: int, headers: Mapping[str, str], body: bytes) -> UpstreamError:
        error = error_from_response(status, headers, body)
        if status == OVERLOADED:
            error.retryable = True
        return error

    async def chat(self, request: ChatCompletionRequest) -> ChatCompletionResponse:
        body = to_messages_request(request, self.target.model, self.max_tokens)
        body.pop("stream", None)
        answer = await self.transport.post(self.url, orjson.dumps(body), self.headers, self.timeout)
        if answer.status >= 400:
            raise self._error(answer.status, answer.headers, answer.body)
        return parse_as(ChatCompletionResponse, to_chat_response(json_object(answer.body, self.url)))

    async def stream_chat(self, request: ChatCompletionRequest) -> AsyncIterator[ChatCompletionChunk]:
        body = to_messages_request(request, self.target.model, self.max_tokens)
        body["stream"] = True
        translator = StreamTranslator()
        async with self.transport.stream(self.url, orjson.dumps(body), self.headers, self.timeout) as stream:
            if stream.status >= 400:
                raise self._error(stream.status, stream.headers, await stream.read())
            async for name, data in sse_data(stream.lines()):
                try:
                    event = orjson.loads(data)
                except orjson.JSONDecodeError as exc:
                    raise UpstreamError(502, f"the upstream {self.url} sent an invalid stream event") from exc
                if not isinstance(event, dict):
                    continue
                for chunk in translator.feed(name or str(event.get("type", "")), event):
                    yield parse_as(ChatCompletionChunk, chunk)

    async def completions(self, request: CompletionRequest) -> CompletionResponse:
        raise UnsupportedOperation("anthropic", "/v1/completions (use /v1/chat/completions)")

    async def stream_completions(self, request: CompletionRequest) -> AsyncIterator[CompletionResponse]:
        raise UnsupportedOperation("anthropic", "/v1/completions (use /v1/chat/completions)")
        yield  # pragma: no cover - makes this an async generator

    async def embeddings(self, request: EmbeddingRequest) -> EmbeddingResponse:
        raise UnsupportedOperation("anthropic", "/v1/embeddings")

    def capabilities(self) -> Capabilities:
        return CAPABILITIES

    async def aclose(self) -> None:
        return None


def register(registry: ProviderRegistry) -> None:
    registry.add("anthropic", AnthropicProvider)

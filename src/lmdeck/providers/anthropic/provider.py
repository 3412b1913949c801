"""The provider: chat through Anthropic's Messages API (``POST {base_url}/v1/messages``).

    routes:
      - name: claude
        targets:
          - provider: anthropic
            model: claude-sonnet-4-5
            api_key: {"$env": "ANTHROPIC_API_KEY"}
            options: {max_tokens: 4096, anthropic_version: "2023-06-01"}

``options.max_tokens`` is the ``max_tokens`` sent when a request sets none (Anthropic requires
one; default :data:`DEFAULT_MAX_TOKENS`). ``/v1/completions`` and ``/v1/embeddings`` are not
offered by Anthropic and answer 400.

The provider continues answers (:class:`~lmdeck.providers.base.ContinuingProvider`), which lets
the gateway resume a stream cut part-way on it (docs/resilience.md): the partial answer goes as
a final assistant turn (a prefill), whose trailing whitespace the translation strips, since
Anthropic refuses it there; the whitespace the continuation then starts with is dropped, since
the client already has it. ``options: {prefill: false}`` turns this off for a target.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from typing import ClassVar

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
from lmdeck.providers.anthropic.errors import upstream_error
from lmdeck.providers.anthropic.request import CHAT_PARAMS, to_messages_call
from lmdeck.providers.anthropic.response import to_chat_response
from lmdeck.providers.anthropic.stream import StreamTranslator
from lmdeck.providers.base import ProviderContext, UnsupportedOperation, UpstreamError
from lmdeck.providers.capabilities import Capabilities
from lmdeck.providers.openai import error_from_response, json_object, parse_as, sse_data
from lmdeck.providers.registry import ProviderRegistry
from lmdeck.providers.transport import Timeout
from lmdeck.settings import TargetConfig

DEFAULT_BASE_URL = "https://api.anthropic.com"
ANTHROPIC_VERSION = "2023-06-01"
#: Chat only; the parameters the translation honours (values it cannot take are refused by the translation).
CAPABILITIES = Capabilities({"chat": CHAT_PARAMS})
#: ``max_tokens`` for a request that sets none, unless the target's ``options.max_tokens`` says otherwise.
DEFAULT_MAX_TOKENS = 4096


def http_error(status: int, headers: Mapping[str, str], body: bytes) -> UpstreamError:
    """An HTTP error answer from Anthropic (529 → :class:`UpstreamOverloaded`, retryable)."""
    error = error_from_response(status, headers, body)
    detail = (error.body or {}).get("error")
    kind = detail.get("type") if isinstance(detail, dict) else None
    return upstream_error(status, kind, error.message, retry_after=error.retry_after, body=error.body)


def _strip_leading_space(chunk: ChatCompletionChunk) -> bool:
    """Drop the whitespace a continuation starts with; True while no text has come yet."""
    for choice in chunk.choices:
        delta = choice.get("delta") or {}
        text = delta.get("content")
        if text:
            delta["content"] = text.lstrip()
            return not delta["content"]
    return True


class AnthropicProvider:
    """Chat through Anthropic's Messages API.

    >>> provider = AnthropicProvider(TargetConfig(provider="anthropic", model="claude-sonnet-4-5"), ctx)  # doctest: +SKIP
    >>> await provider.chat(ChatCompletionRequest(model="claude", messages=[...]))  # doctest: +SKIP
    """

    #: Where calls go when a target sets no ``base_url`` (the egress policy checks credentials against it).
    default_base_url: ClassVar[str] = DEFAULT_BASE_URL

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
        self.continues_answers = bool(target.options.get("prefill", True))

    async def chat(self, request: ChatCompletionRequest) -> ChatCompletionResponse:
        call = to_messages_call(request, self.target.model, self.max_tokens)
        call.body.pop("stream", None)
        answer = await self.transport.post(self.url, orjson.dumps(call.body), self.headers, self.timeout)
        if answer.status >= 400:
            raise http_error(answer.status, answer.headers, answer.body)
        return parse_as(ChatCompletionResponse, to_chat_response(json_object(answer.body, self.url), call))

    async def stream_chat(self, request: ChatCompletionRequest) -> AsyncIterator[ChatCompletionChunk]:
        async for chunk in self._stream(request):
            yield chunk

    async def stream_continuation(self, request: ChatCompletionRequest) -> AsyncIterator[ChatCompletionChunk]:
        """Stream what follows the final assistant message, sent as a prefill."""
        begun = request.messages[-1].text() if request.messages[-1].role == "assistant" else ""
        trimmed = begun != begun.rstrip()
        async for chunk in self._stream(request):
            if trimmed:
                trimmed = _strip_leading_space(chunk)
            yield chunk

    async def _stream(self, request: ChatCompletionRequest) -> AsyncIterator[ChatCompletionChunk]:
        call = to_messages_call(request, self.target.model, self.max_tokens)
        call.body["stream"] = True
        translator = StreamTranslator(call)
        async with self.transport.stream(self.url, orjson.dumps(call.body), self.headers, self.timeout) as stream:
            if stream.status >= 400:
                raise http_error(stream.status, stream.headers, await stream.read())
            async for name, data in sse_data(stream.lines()):
                try:
                    event = orjson.loads(data)
                except orjson.JSONDecodeError as exc:
                    raise UpstreamError(502, f"the upstream {self.url} sent an invalid stream event") from exc
                if not isinstance(event, dict):
                    continue
                for chunk in translator.feed(name or str(event.get("type", "")), event):
                    yield parse_as(ChatCompletionChunk, chunk)
                if translator.finished:
                    return
        if not translator.finished:
            raise UpstreamError(502, f"the upstream {self.url} ended the stream before message_stop", retryable=True)

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

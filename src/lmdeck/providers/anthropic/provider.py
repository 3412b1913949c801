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

A request that came in through ``/v1/messages`` is sent as the client sent it, model replaced by
the target's (see :mod:`lmdeck.pipeline.native`): its answer is left on the request's exchange for
the ingress to return as is, and translated into chat for the pipeline (tokens, cost, cache).
``count_tokens`` asks the upstream's ``/v1/messages/count_tokens``.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from typing import Any, ClassVar

import orjson

from lmdeck.pipeline.native import exchange_of
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
from lmdeck.settings import ConfigError, TargetConfig

DEFAULT_BASE_URL = "https://api.anthropic.com"
ANTHROPIC_VERSION = "2023-06-01"
#: Chat only; the parameters the translation honours (values it cannot take are refused by the translation).
#: A ``/v1/messages`` request is sent as the client sent it (see :mod:`lmdeck.pipeline.native`).
CAPABILITIES = Capabilities({"chat": CHAT_PARAMS}, native=frozenset({"messages"}))
#: ``max_tokens`` for a request that sets none, unless the target's ``options.max_tokens`` says otherwise.
DEFAULT_MAX_TOKENS = 4096
#: The fields of a Messages body that ``/v1/messages/count_tokens`` takes.
COUNTED_FIELDS = frozenset({"model", "messages", "system", "tools", "tool_choice", "thinking"})


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
        if "adapter" in target.options:
            raise ConfigError(
                f"target {target.id}: options.adapter is not supported by provider 'anthropic'; "
                "serve adapters with provider 'local' or 'openai' (vLLM)"
            )
        self.target = target
        self.transport = ctx.transport
        base = (target.base_url or DEFAULT_BASE_URL).rstrip("/")
        self.url = base + ("/messages" if base.endswith("/v1") else "/v1/messages")
        self.count_url = self.url + "/count_tokens"
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

    def native_body(self, request: ChatCompletionRequest) -> dict[str, Any] | None:
        """The client's Messages body for this target, when the request came as one and may go as sent."""
        exchange = exchange_of(request)
        return exchange.body_for(request, "messages", self.target.model) if exchange is not None else None

    async def chat(self, request: ChatCompletionRequest) -> ChatCompletionResponse:
        native = self.native_body(request)
        call = to_messages_call(request, self.target.model, self.max_tokens) if native is None else None
        body = call.body if call is not None else native or {}
        body.pop("stream", None)
        answer = await self.transport.post(self.url, orjson.dumps(body), self.headers, self.timeout)
        if answer.status >= 400:
            raise http_error(answer.status, answer.headers, answer.body)
        message = json_object(answer.body, self.url)
        exchange = exchange_of(request)
        if native is not None and exchange is not None:
            exchange.answer = message
            return parse_as(ChatCompletionResponse, to_chat_response(message))
        return parse_as(ChatCompletionResponse, to_chat_response(message, call))

    async def stream_chat(self, request: ChatCompletionRequest) -> AsyncIterator[ChatCompletionChunk]:
        async for chunk in self._stream(request, native=True):
            yield chunk

    async def count_tokens(self, request: ChatCompletionRequest) -> int:
        """The input tokens of ``request`` as the upstream counts them (``POST /v1/messages/count_tokens``)."""
        body = self.native_body(request)
        if body is None:
            body = to_messages_call(request, self.target.model, self.max_tokens).body
        counted = {k: v for k, v in body.items() if k in COUNTED_FIELDS}
        answer = await self.transport.post(self.count_url, orjson.dumps(counted), self.headers, self.timeout)
        if answer.status >= 400:
            raise http_error(answer.status, answer.headers, answer.body)
        tokens = json_object(answer.body, self.count_url).get("input_tokens")
        if not isinstance(tokens, int) or isinstance(tokens, bool):
            raise UpstreamError(
                502, f"the upstream {self.count_url} answered without `input_tokens`", kind="bad_answer"
            )
        return tokens

    async def stream_continuation(self, request: ChatCompletionRequest) -> AsyncIterator[ChatCompletionChunk]:
        """Stream what follows the final assistant message, sent as a prefill."""
        begun = request.messages[-1].text() if request.messages[-1].role == "assistant" else ""
        trimmed = begun != begun.rstrip()
        async for chunk in self._stream(request):
            if trimmed:
                trimmed = _strip_leading_space(chunk)
            yield chunk

    async def _stream(self, request: ChatCompletionRequest, native: bool = False) -> AsyncIterator[ChatCompletionChunk]:
        exchange = exchange_of(request) if native else None
        body = self.native_body(request) if native else None
        call = None
        if body is None:
            call = to_messages_call(request, self.target.model, self.max_tokens)
            body, exchange = call.body, None
        body["stream"] = True
        translator = StreamTranslator(call)
        began = len(exchange.events) if exchange is not None else 0
        try:
            async with self.transport.stream(self.url, orjson.dumps(body), self.headers, self.timeout) as stream:
                if stream.status >= 400:
                    raise http_error(stream.status, stream.headers, await stream.read())
                async for name, data in sse_data(stream.lines()):
                    try:
                        event = orjson.loads(data)
                    except orjson.JSONDecodeError as exc:
                        raise UpstreamError(502, f"the upstream {self.url} sent an invalid stream event") from exc
                    if not isinstance(event, dict):
                        continue
                    kind = name or str(event.get("type", ""))
                    if exchange is not None:
                        exchange.events.append((kind, event))
                    for chunk in translator.feed(kind, event):
                        yield parse_as(ChatCompletionChunk, chunk)
                    if translator.finished:
                        return
            if not translator.finished:
                raise UpstreamError(
                    502, f"the upstream {self.url} ended the stream before message_stop", retryable=True
                )
        except UpstreamError:
            if exchange is not None and exchange.relayed == 0:
                # Nothing reached the client: another attempt (a retry, a fallback) answers from the start.
                del exchange.events[began:]
            raise

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

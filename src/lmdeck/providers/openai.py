"""Any OpenAI-compatible upstream: OpenAI itself, vLLM, Ollama, llama.cpp server, TGI.

Point a target's ``base_url`` at the server's ``/v1``::

    routes:
      - name: llama
        targets:
          - provider: openai
            model: meta-llama/Llama-3.1-8B-Instruct
            base_url: http://127.0.0.1:8000/v1
            api_key: {"$env": "VLLM_API_KEY"}   # optional

Streams always ask the upstream for usage (``stream_options.include_usage``) so that traces
get token counts; the usage-only chunk is removed before it reaches a client that did not
ask for it (see :class:`lmdeck.gateway.routing.usage.StreamUsageFilter`). An upstream that
rejects ``stream_options`` can opt out with ``options: {stream_usage: false}``.

Every parameter is forwarded (the upstream honours or refuses it); list those a server
silently ignores in the target's ``unsupported_params`` so that lmdeck refuses them instead.

A server that continues a partial assistant message (vLLM's ``continue_final_message``, sent
with ``add_generation_prompt: false``) can say so with ``options: {continue_final_message:
true}``; the gateway then resumes a stream cut part-way on this target (see
docs/resilience.md). OpenAI's own API does not offer it, so it is off by default.

A vLLM upstream can serve the target's model with a LoRA adapter: ``options: {adapter: PATH}``
(the directory as the vLLM server sees it, optional ``lora_name`` and ``adapter_loading:
dynamic|static``). Requests then name the adapter as their ``model``, and a ``dynamic`` adapter is
loaded through vLLM's ``/load_lora_adapter`` first (see :mod:`lmdeck.providers.openai_lora` and
docs/fine-tuning.md).

Failures become :class:`UpstreamError`: HTTP errors keep the upstream's status and
``Retry-After``; refused, reset and timed-out connections are 502/504 and retryable, and so
is an ``{"error": ...}`` event inside a stream (the upstream failed while answering).
"""

from __future__ import annotations

from collections.abc import AsyncIterable, AsyncIterator, Mapping
from typing import Any, ClassVar, TypeVar

import orjson
from pydantic import BaseModel, ValidationError

from lmdeck.protocol import (
    ChatCompletionChunk,
    ChatCompletionRequest,
    ChatCompletionResponse,
    CompletionRequest,
    CompletionResponse,
    EmbeddingRequest,
    EmbeddingResponse,
)
from lmdeck.protocol.responses import ResponsesChatRequest
from lmdeck.providers.base import ProviderContext, UpstreamError, retry_after_from
from lmdeck.providers.capabilities import FORWARDS_ALL, Capabilities
from lmdeck.providers.error_body import error_message
from lmdeck.providers.openai_lora import LoraAdapter, LoraLoader
from lmdeck.providers.registry import ProviderRegistry
from lmdeck.providers.responses_native import chat_of_response
from lmdeck.providers.transport import Timeout
from lmdeck.settings import TargetConfig

DEFAULT_BASE_URL = "https://api.openai.com/v1"

M = TypeVar("M", bound=BaseModel)


def json_object(body: bytes, url: str) -> dict[str, Any]:
    """A successful answer's JSON body, which must be an object; anything else is a 502 naming ``url``."""
    try:
        data = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise UpstreamError(502, f"the upstream {url} answered with invalid JSON", kind="bad_answer") from exc
    if not isinstance(data, dict):
        raise UpstreamError(502, f"the upstream {url} answered with a non-object JSON body", kind="bad_answer")
    return data


def error_from_response(status: int, headers: Mapping[str, str], body: bytes) -> UpstreamError:
    """An HTTP error answer as an :class:`UpstreamError`, keeping the upstream's message and body."""
    parsed, said = error_message(body)
    message = f"upstream answered {status}"
    if said:
        message += f": {said}"
    elif body and parsed is None:
        message += f": {body[:200].decode(errors='replace')}"
    return UpstreamError(status, message, retry_after=retry_after_from(headers), body=parsed)


async def sse_data(lines: AsyncIterable[str]) -> AsyncIterator[tuple[str | None, str]]:
    """``(event name, data)`` for each server-sent event; comments and keep-alives skipped."""
    event: str | None = None
    data: list[str] = []
    async for line in lines:
        if not line:
            if data:
                yield event, "\n".join(data)
            event, data = None, []
        elif line.startswith("data:"):
            data.append(line[5:].removeprefix(" "))
        elif line.startswith("event:"):
            event = line[6:].strip()
    if data:
        yield event, "\n".join(data)


def parse_as(model: type[M], data: Any) -> M:
    """Validate an upstream answer; a shape lmdeck cannot read is the upstream's fault (502)."""
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"])
        raise UpstreamError(
            502,
            f"the upstream's answer is not a valid {model.__name__}: {where}: {first['msg']}",
            retryable=False,
            kind="bad_answer",
        ) from None


class OpenAIProvider:
    """Speaks OpenAI's HTTP API to ``base_url`` through the gateway's shared transport.

    >>> provider = OpenAIProvider(TargetConfig(model="gpt-4o-mini"), ctx)  # doctest: +SKIP
    >>> await provider.chat(ChatCompletionRequest(model="x", messages=[...]))  # doctest: +SKIP
    """

    #: Where calls go when a target sets no ``base_url`` (the egress policy checks credentials against it).
    default_base_url: ClassVar[str] = DEFAULT_BASE_URL

    def __init__(self, target: TargetConfig, ctx: ProviderContext) -> None:
        self.target = target
        self.transport = ctx.transport
        self.base_url = (target.base_url or DEFAULT_BASE_URL).rstrip("/")
        self.headers = {"content-type": "application/json", **target.headers}
        if target.api_key is not None:
            self.headers["authorization"] = f"Bearer {target.api_key.resolve()}"
        self.timeout = Timeout.for_target(target.timeout)
        self.stream_usage = bool(target.options.get("stream_usage", True))
        self.continues_answers = bool(target.options.get("continue_final_message", False))
        #: ``options: {responses: native}``: the upstream serves ``/v1/responses`` itself.
        self.speaks_responses = target.options.get("responses") == "native"
        adapter = LoraAdapter.of_target(target)
        self.lora = (
            None if adapter is None else LoraLoader(adapter, self.base_url, self.transport, self.headers, self.timeout)
        )
        #: What requests name as ``model`` upstream: the adapter's name when the target serves one.
        self.upstream_model = target.model if adapter is None else adapter.name

    async def _ready(self) -> None:
        if self.lora is not None:
            await self.lora.ensure()

    def _adapter_forgotten(self, status: int, body: bytes) -> bool:
        return self.lora is not None and self.lora.forgotten(status, body)

    async def _post(self, path: str, payload: dict[str, Any]) -> dict[str, Any]:
        url = self.base_url + path
        await self._ready()
        answer = await self.transport.post(url, orjson.dumps(payload), self.headers, self.timeout)
        if self._adapter_forgotten(answer.status, answer.body):
            await self._ready()
            answer = await self.transport.post(url, orjson.dumps(payload), self.headers, self.timeout)
        if answer.status >= 400:
            raise error_from_response(answer.status, answer.headers, answer.body)
        return json_object(answer.body, url)

    async def _stream(self, path: str, payload: dict[str, Any]) -> AsyncIterator[dict[str, Any]]:
        url = self.base_url + path
        await self._ready()
        for attempt in (1, 2):
            async with self.transport.stream(url, orjson.dumps(payload), self.headers, self.timeout) as stream:
                if stream.status >= 400:
                    body = await stream.read()
                    if attempt == 1 and self._adapter_forgotten(stream.status, body):
                        await self._ready()
                        continue
                    raise error_from_response(stream.status, stream.headers, body)
                async for event in self._events(url, stream.lines()):
                    yield event
                return

    async def _events(self, url: str, lines: AsyncIterator[str]) -> AsyncIterator[dict[str, Any]]:
        async for _, data in sse_data(lines):
            if data.strip() == "[DONE]":
                return
            try:
                event = orjson.loads(data)
            except orjson.JSONDecodeError as exc:
                raise UpstreamError(502, f"the upstream {url} sent an invalid stream event", kind="bad_answer") from exc
            if not isinstance(event, dict):
                raise UpstreamError(502, f"the upstream {url} sent a non-object stream event", kind="bad_answer")
            if "error" in event and "choices" not in event:
                error = event["error"]
                message = error.get("message", error) if isinstance(error, dict) else error
                raise UpstreamError(502, f"the upstream stream failed: {message}", retryable=True, kind="stream_error")
            yield event

    def _payload(self, request: ChatCompletionRequest | CompletionRequest, stream: bool) -> dict[str, Any]:
        payload = request.upstream_payload(self.upstream_model)
        payload["stream"] = stream
        if not stream:
            payload.pop("stream_options", None)
        elif self.stream_usage:
            asked = payload.get("stream_options")
            payload["stream_options"] = {**(asked if isinstance(asked, dict) else {}), "include_usage": True}
        return payload

    async def chat(self, request: ChatCompletionRequest) -> ChatCompletionResponse:
        native = request.native_body() if self.speaks_responses and isinstance(request, ResponsesChatRequest) else None
        if native is not None:
            # The client's own Responses body, to the upstream's own endpoint (see ResponsesChatRequest).
            answer = await self._post("/responses", {**native, "model": self.upstream_model, "stream": False})
            return chat_of_response(answer)
        data = await self._post("/chat/completions", self._payload(request, False))
        return parse_as(ChatCompletionResponse, data)

    async def stream_chat(self, request: ChatCompletionRequest) -> AsyncIterator[ChatCompletionChunk]:
        async for event in self._stream("/chat/completions", self._payload(request, True)):
            yield parse_as(ChatCompletionChunk, event)

    async def stream_continuation(self, request: ChatCompletionRequest) -> AsyncIterator[ChatCompletionChunk]:
        """Stream what follows the final (assistant) message, with vLLM's ``continue_final_message``."""
        payload = self._payload(request, True)
        payload["continue_final_message"] = True
        payload["add_generation_prompt"] = False
        async for event in self._stream("/chat/completions", payload):
            yield parse_as(ChatCompletionChunk, event)

    async def completions(self, request: CompletionRequest) -> CompletionResponse:
        return parse_as(CompletionResponse, await self._post("/completions", self._payload(request, False)))

    async def stream_completions(self, request: CompletionRequest) -> AsyncIterator[CompletionResponse]:
        async for event in self._stream("/completions", self._payload(request, True)):
            yield parse_as(CompletionResponse, event)

    async def embeddings(self, request: EmbeddingRequest) -> EmbeddingResponse:
        payload = request.upstream_payload(self.upstream_model)
        return parse_as(EmbeddingResponse, await self._post("/embeddings", payload))

    def capabilities(self) -> Capabilities:
        # Every parameter reaches the upstream, which refuses what it lacks; a target's
        # `unsupported_params` names those an upstream would ignore instead.
        if self.speaks_responses:
            return Capabilities(FORWARDS_ALL.params, native=frozenset({"responses"}))
        return FORWARDS_ALL

    async def aclose(self) -> None:
        return None


def register(registry: ProviderRegistry) -> None:
    registry.add("openai", OpenAIProvider)

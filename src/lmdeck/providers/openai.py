"""Any OpenAI-compatible upstream: OpenAI itself, vLLM, Ollama, llama.cpp server, TGI."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import httpx
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
from lmdeck.providers.base import ProviderContext, UpstreamError, UpstreamTimeout
from lmdeck.providers.registry import ProviderRegistry
from lmdeck.settings import TargetConfig

DEFAULT_BASE_URL = "https://api.openai.com/v1"


def _retry_after(response: httpx.Response) -> float | None:
    value = response.headers.get("retry-after")
    if value is None:
        return None
    try:
        return max(float(value), 0.0)
    except ValueError:
        return None


def _error_from(response: httpx.Response, body: bytes) -> UpstreamError:
    try:
        parsed = orjson.loads(body) if body else None
    except orjson.JSONDecodeError:
        parsed = None
    message = f"upstream answered {response.status_code}"
    if isinstance(parsed, dict) and isinstance(parsed.get("error"), dict):
        message += f": {parsed['error'].get('message', '')}"
    return UpstreamError(
        response.status_code,
        message,
        retry_after=_retry_after(response),
        body=parsed if isinstance(parsed, dict) else None,
    )


class OpenAIProvider:
    """Speaks OpenAI's HTTP API to ``base_url``."""

    def __init__(self, target: TargetConfig, ctx: ProviderContext) -> None:
        self.target = target
        self.http = ctx.http
        self.base_url = (target.base_url or DEFAULT_BASE_URL).rstrip("/")
        self.headers = {"content-type": "application/json", **target.headers}
        if target.api_key is not None:
            self.headers["authorization"] = f"Bearer {target.api_key.resolve()}"
        self.timeout = httpx.Timeout(target.timeout, connect=min(10.0, target.timeout))

    async def _post(self, path: str, payload: dict[str, Any]) -> dict[str, Any]:
        try:
            response = await self.http.post(
                self.base_url + path,
                content=orjson.dumps(payload),
                headers=self.headers,
                timeout=self.timeout,
            )
        except httpx.TimeoutException as exc:
            raise UpstreamTimeout(f"upstream timed out after {self.target.timeout}s") from exc
        except httpx.HTTPError as exc:
            raise UpstreamError(502, f"upstream unreachable: {type(exc).__name__}: {exc}") from exc
        if response.status_code >= 400:
            raise _error_from(response, response.content)
        try:
            data = orjson.loads(response.content)
        except orjson.JSONDecodeError as exc:
            raise UpstreamError(502, "upstream answered with invalid JSON") from exc
        if not isinstance(data, dict):
            raise UpstreamError(502, "upstream answered with a non-object JSON body")
        return data

    async def _stream(self, path: str, payload: dict[str, Any]) -> AsyncIterator[dict[str, Any]]:
        try:
            async with self.http.stream(
                "POST",
                self.base_url + path,
                content=orjson.dumps(payload),
                headers=self.headers,
                timeout=self.timeout,
            ) as response:
                if response.status_code >= 400:
                    raise _error_from(response, await response.aread())
                async for line in response.aiter_lines():
                    if not line.startswith("data:"):
                        continue
                    data = line[5:].strip()
                    if data == "[DONE]":
                        return
                    try:
                        event = orjson.loads(data)
                    except orjson.JSONDecodeError as exc:
                        raise UpstreamError(502, "upstream sent an invalid stream event") from exc
                    if isinstance(event, dict) and "error" in event and "choices" not in event:
                        raise UpstreamError(502, f"upstream stream error: {event['error']}", retryable=False)
                    yield event
        except httpx.TimeoutException as exc:
            raise UpstreamTimeout(f"upstream timed out after {self.target.timeout}s") from exc
        except httpx.HTTPError as exc:
            raise UpstreamError(502, f"upstream unreachable: {type(exc).__name__}: {exc}") from exc

    async def chat(self, request: ChatCompletionRequest) -> ChatCompletionResponse:
        payload = request.upstream_payload(self.target.model)
        payload["stream"] = False
        return ChatCompletionResponse.model_validate(await self._post("/chat/completions", payload))

    async def stream_chat(self, request: ChatCompletionRequest) -> AsyncIterator[ChatCompletionChunk]:
        payload = request.upstream_payload(self.target.model)
        payload["stream"] = True
        async for event in self._stream("/chat/completions", payload):
            yield ChatCompletionChunk.model_validate(event)

    async def completions(self, request: CompletionRequest) -> CompletionResponse:
        payload = request.upstream_payload(self.target.model)
        payload["stream"] = False
        return CompletionResponse.model_validate(await self._post("/completions", payload))

    async def stream_completions(self, request: CompletionRequest) -> AsyncIterator[CompletionResponse]:
        payload = request.upstream_payload(self.target.model)
        payload["stream"] = True
        async for event in self._stream("/completions", payload):
            yield CompletionResponse.model_validate(event)

    async def embeddings(self, request: EmbeddingRequest) -> EmbeddingResponse:
        payload = request.upstream_payload(self.target.model)
        return EmbeddingResponse.model_validate(await self._post("/embeddings", payload))

    async def aclose(self) -> None:
        return None


def register(registry: ProviderRegistry) -> None:
    registry.add("openai", OpenAIProvider)

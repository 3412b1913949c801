"""The ``local`` provider: models served in-process by lmdeck's own engine, no network, no key.

A route target names a local model (``demo``, ``all-minilm-l6-v2`` or a directory under
``local.model_dir``); all targets of one gateway share one :class:`LocalRuntime`, kept in
the provider context, so each model is loaded once::

    routes:
      - name: tiny
        targets:
          - provider: local
            model: demo
            options: {quantize: int8}
"""

from __future__ import annotations

import asyncio
import base64
import importlib.util
import struct
import time
import uuid
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING, Any

from lmdeck.local.errors import EngineClosed, PromptTooLong, QueueFull
from lmdeck.local.params import SamplingParams
from lmdeck.local.runtime import LocalRuntime
from lmdeck.protocol import (
    ChatCompletionChunk,
    ChatCompletionRequest,
    ChatCompletionResponse,
    CompletionRequest,
    CompletionResponse,
    EmbeddingRequest,
    EmbeddingResponse,
    Usage,
    error_body,
)
from lmdeck.protocol.chat import ChatChoice
from lmdeck.protocol.embeddings import Embedding
from lmdeck.providers.base import ProviderContext, UnsupportedOperation, UpstreamError
from lmdeck.providers.capabilities import Capabilities
from lmdeck.providers.registry import ProviderRegistry
from lmdeck.settings import ConfigError, TargetConfig

if TYPE_CHECKING:
    from lmdeck.local.engine import GenerationHandle, LocalEngine

RUNTIME_KEY = "local.runtime"
DEFAULT_MAX_TOKENS = 256
QUANTIZE_CHOICES = ("none", "int8")


#: What local models honour, by task; any other parameter in use is refused by name
#: (see :mod:`lmdeck.providers.capabilities`).
CAPABILITIES: dict[str, Capabilities] = {
    "generate": Capabilities(
        {
            "chat": frozenset(
                {
                    "max_tokens",
                    "max_completion_tokens",
                    "temperature",
                    "top_p",
                    "n",
                    "stop",
                    "seed",
                    "stream_options.include_usage",
                }
            ),
            "completions": frozenset({"max_tokens", "temperature", "top_p", "stop", "seed"}),
        }
    ),
    "embed": Capabilities({"embeddings": frozenset({"encoding_format", "dimensions"})}),
}


def _runtime(ctx: ProviderContext) -> LocalRuntime:
    runtime = ctx.extras.get(RUNTIME_KEY)
    if not isinstance(runtime, LocalRuntime):
        runtime = LocalRuntime(ctx.settings.local)
        ctx.extras[RUNTIME_KEY] = runtime
    return runtime


def _bad_request(message: str, param: str | None, code: str = "invalid_value") -> UpstreamError:
    """A refusal in OpenAI's error shape, which the gateway passes to the client as it is."""
    body = error_body(message, param=param, code=code)
    return UpstreamError(400, message, retryable=False, body=body, kind="invalid_request")


def _new_id(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:24]}"


def _embedding_value(vector: list[float], encoding: str | None) -> list[float] | str:
    if encoding == "base64":
        return base64.b64encode(struct.pack(f"<{len(vector)}f", *vector)).decode()
    return vector


class LocalProvider:
    """Serves one local model: chat and completions for generative models, embeddings for encoders."""

    def __init__(self, target: TargetConfig, ctx: ProviderContext) -> None:
        self.target = target
        self.runtime = _runtime(ctx)
        try:
            self.spec = self.runtime.find(target.model)
        except LookupError as exc:
            raise ConfigError(str(exc)) from None
        self.quantize = str(target.options.get("quantize", ctx.settings.local.quantize))
        if self.quantize not in QUANTIZE_CHOICES:
            raise ConfigError(f"target {target.id}: options.quantize must be one of {', '.join(QUANTIZE_CHOICES)}")
        self.runtime.acquire()
        self._closed = False

    # -- generation ------------------------------------------------------------------------------

    async def _engine(self, operation: str) -> LocalEngine:
        if self.spec.task != "generate":
            raise UnsupportedOperation(f"local:{self.target.model}", operation)
        try:
            return await self.runtime.engine(self.target.model, self.quantize)
        except (OSError, RuntimeError, ValueError) as exc:
            raise UpstreamError(
                503, f"local model {self.target.model!r} failed to load: {exc}", retryable=False
            ) from exc

    def _params(
        self, engine: LocalEngine, body: ChatCompletionRequest | CompletionRequest, index: int
    ) -> SamplingParams:
        stop = body.stop_list() if isinstance(body, ChatCompletionRequest) else _stops(body.stop)
        seed = None if body.seed is None else body.seed + index
        temperature = body.temperature if body.temperature is not None else engine.lm.default_temperature
        return SamplingParams(
            max_tokens=body.token_limit() or DEFAULT_MAX_TOKENS,
            temperature=temperature,
            top_p=body.top_p if body.top_p is not None else 1.0,
            seed=seed,
            stop=tuple(stop),
        )

    def _submit(self, engine: LocalEngine, prompt: list[int], params: SamplingParams) -> GenerationHandle:
        try:
            return engine.submit(prompt, params)
        except QueueFull as exc:
            raise UpstreamError(503, str(exc), retryable=False, kind="queue_full") from None
        except PromptTooLong as exc:
            raise _bad_request(str(exc), None, "context_length_exceeded") from None
        except EngineClosed as exc:
            raise UpstreamError(503, str(exc), retryable=True) from None

    async def _generate(
        self, engine: LocalEngine, jobs: list[tuple[list[int], SamplingParams]]
    ) -> list[tuple[str, str, int]]:
        """Submit every job at once (they share the running batch), then wait for each."""
        handles: list[GenerationHandle] = []
        try:
            for prompt, params in jobs:
                handles.append(self._submit(engine, prompt, params))
            results = []
            for handle in handles:
                text, reason = await self._wait(handle)
                results.append((text, reason, handle.completion_tokens))
            return results
        finally:
            for handle in handles:
                handle.cancel()

    async def _wait(self, handle: GenerationHandle) -> tuple[str, str]:
        try:
            return await handle.text()
        except EngineClosed as exc:
            raise UpstreamError(503, str(exc), retryable=True) from None
        except Exception as exc:
            raise UpstreamError(500, f"local generation failed: {exc}", retryable=False) from exc

    async def _events(self, handle: GenerationHandle) -> AsyncIterator[tuple[str, str | None]]:
        try:
            while True:
                try:
                    event = await handle.next_event()
                except EngineClosed as exc:
                    raise UpstreamError(503, str(exc), retryable=True) from None
                except Exception as exc:
                    raise UpstreamError(500, f"local generation failed: {exc}", retryable=False) from exc
                yield event.text, event.finish_reason
                if event.finish_reason is not None:
                    return
        finally:
            handle.cancel()

    def _chat_prompt(self, engine: LocalEngine, request: ChatCompletionRequest) -> list[int]:
        messages = [{"role": m.role, "content": m.text()} for m in request.messages]
        return engine.lm.encode(engine.lm.template.render(messages))

    async def chat(self, request: ChatCompletionRequest) -> ChatCompletionResponse:
        engine = await self._engine("chat completions")
        prompt = self._chat_prompt(engine, request)
        jobs = [(prompt, self._params(engine, request, i)) for i in range(request.n or 1)]
        results = await self._generate(engine, jobs)
        completion = sum(tokens for _, _, tokens in results)
        return ChatCompletionResponse(
            id=_new_id("chatcmpl"),
            created=int(time.time()),
            model=self.target.model,
            choices=[
                ChatChoice(index=i, message={"role": "assistant", "content": text}, finish_reason=reason)
                for i, (text, reason, _) in enumerate(results)
            ],
            usage=Usage(prompt_tokens=len(prompt), completion_tokens=completion, total_tokens=len(prompt) + completion),
        )

    async def stream_chat(self, request: ChatCompletionRequest) -> AsyncIterator[ChatCompletionChunk]:
        if (request.n or 1) > 1:
            raise _bad_request("n > 1 is not supported with stream=true by local models: send n requests", "n")
        engine = await self._engine("chat completions")
        prompt = self._chat_prompt(engine, request)
        handle = self._submit(engine, prompt, self._params(engine, request, 0))
        chunk_id, created = _new_id("chatcmpl"), int(time.time())

        def chunk(choices: list[dict[str, Any]], usage: Usage | None = None) -> ChatCompletionChunk:
            return ChatCompletionChunk(
                id=chunk_id, created=created, model=self.target.model, choices=choices, usage=usage
            )

        try:
            yield chunk([{"index": 0, "delta": {"role": "assistant", "content": ""}, "finish_reason": None}])
            async for text, reason in self._events(handle):
                if text:
                    yield chunk([{"index": 0, "delta": {"content": text}, "finish_reason": None}])
                if reason is not None:
                    yield chunk([{"index": 0, "delta": {}, "finish_reason": reason}])
        finally:
            # Closing this generator early (the client went away) frees the batch row now.
            handle.cancel()
        if request.stream_options is not None and request.stream_options.include_usage:
            done = handle.completion_tokens
            yield chunk([], Usage(prompt_tokens=len(prompt), completion_tokens=done, total_tokens=len(prompt) + done))

    async def completions(self, request: CompletionRequest) -> CompletionResponse:
        engine = await self._engine("completions")
        prompts = [engine.lm.encode(p) for p in request.prompts()]
        params = self._params(engine, request, 0)
        results = await self._generate(engine, [(prompt, params) for prompt in prompts])
        choices = [
            {"index": i, "text": text, "finish_reason": reason, "logprobs": None}
            for i, (text, reason, _) in enumerate(results)
        ]
        completion = sum(tokens for _, _, tokens in results)
        prompt_tokens = sum(len(p) for p in prompts)
        return CompletionResponse(
            id=_new_id("cmpl"),
            created=int(time.time()),
            model=self.target.model,
            choices=choices,
            usage=Usage(
                prompt_tokens=prompt_tokens, completion_tokens=completion, total_tokens=prompt_tokens + completion
            ),
        )

    async def stream_completions(self, request: CompletionRequest) -> AsyncIterator[CompletionResponse]:
        prompts = request.prompts()
        if len(prompts) != 1:
            raise _bad_request(
                "stream=true takes a single prompt with local models: send one request per prompt", "prompt"
            )
        engine = await self._engine("completions")
        prompt = engine.lm.encode(prompts[0])
        handle = self._submit(engine, prompt, self._params(engine, request, 0))
        chunk_id, created = _new_id("cmpl"), int(time.time())
        try:
            async for text, reason in self._events(handle):
                if text or reason is not None:
                    yield CompletionResponse(
                        id=chunk_id,
                        created=created,
                        model=self.target.model,
                        choices=[{"index": 0, "text": text, "finish_reason": reason, "logprobs": None}],
                    )
        finally:
            handle.cancel()

    # -- embeddings -------------------------------------------------------------------------------

    async def embeddings(self, request: EmbeddingRequest) -> EmbeddingResponse:
        if self.spec.task != "embed":
            raise UnsupportedOperation(f"local:{self.target.model}", "embeddings")
        try:
            texts = request.texts()
        except ValueError as exc:
            raise _bad_request(f"input: {exc}; send strings to local models", "input") from None
        if not texts:
            raise _bad_request("input: send at least one string", "input")
        try:
            batcher = await self.runtime.embedder(self.target.model)
        except (OSError, RuntimeError, ValueError) as exc:
            raise UpstreamError(
                503, f"local model {self.target.model!r} failed to load: {exc}", retryable=False
            ) from exc
        dims = batcher.embedder.dimensions
        if request.dimensions is not None and request.dimensions != dims:
            raise _bad_request(
                f"dimensions: {self.target.model} makes {dims}-dimensional vectors; omit dimensions", "dimensions"
            )
        vectors, tokens = await batcher.embed(texts)
        used = sum(tokens)
        return EmbeddingResponse(
            data=[
                Embedding(index=i, embedding=_embedding_value(v, request.encoding_format))
                for i, v in enumerate(vectors)
            ],
            model=self.target.model,
            usage=Usage(prompt_tokens=used, total_tokens=used),
        )

    def capabilities(self) -> Capabilities:
        return CAPABILITIES[self.spec.task]

    async def aclose(self) -> None:
        if not self._closed:
            self._closed = True
            # The last release joins the engine threads: keep that off the event loop.
            await asyncio.to_thread(self.runtime.release)


def _stops(stop: str | list[str] | None) -> list[str]:
    if stop is None:
        return []
    return [stop] if isinstance(stop, str) else list(stop)


#: What the engine needs at run time; checked without importing it, which takes seconds.
REQUIRED_MODULES = ("torch", "transformers", "tokenizers", "safetensors")


def register(registry: ProviderRegistry) -> None:
    missing = [m for m in REQUIRED_MODULES if importlib.util.find_spec(m) is None]
    if missing:
        raise ImportError(f"the local provider needs {', '.join(missing)}")
    registry.add("local", LocalProvider)

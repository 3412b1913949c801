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
      - name: counter
        targets:
          - provider: local
            model: demo
            options: {adapter: /srv/adapters/counter}   # a PEFT LoRA directory, served on demo
"""

from __future__ import annotations

import asyncio
import base64
import importlib.util
import struct
import time
import uuid
from collections.abc import AsyncIterator, Awaitable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, TypeVar

import anyio

from lmdeck.local.adapter_dir import check_adapter_dir
from lmdeck.local.errors import AdapterError, EngineClosed, PromptTooLong, QueueFull
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
from lmdeck.providers.caller import CURRENT_CALLER
from lmdeck.providers.capabilities import Capabilities
from lmdeck.providers.registry import ProviderRegistry
from lmdeck.settings import ConfigError, TargetConfig

if TYPE_CHECKING:
    from lmdeck.local.engine import GenerationHandle, LocalEngine, TokenEvent
    from lmdeck.local.logprobs import TokenLogprob, TokenText

T = TypeVar("T")

#: Share of the target's timeout a request spends waiting for its model to load, and the Retry-After
#: (seconds) of the 503 ``model_loading`` answered when the load takes longer.
LOAD_WAIT_SHARE = 0.9
LOADING_RETRY_AFTER = 5.0
DEFAULT_MAX_TOKENS = 256
QUANTIZE_CHOICES = ("none", "int8")
#: OpenAI's limits: ``top_logprobs`` of a chat request, ``logprobs`` of a legacy completion.
MAX_CHAT_TOP_LOGPROBS = 20
MAX_COMPLETION_LOGPROBS = 5

#: What local models honour, by task: the one declaration of it (names as
#: :func:`lmdeck.protocol.parameters.parameters_in_use` lists them; ``model``, ``messages``/``prompt``/``input``,
#: ``stream``, ``user`` and ``metadata`` are always honoured, and parameters at a value that asks for nothing,
#: such as ``tools: []``, ``tool_choice: "auto"`` or ``response_format: {"type": "text"}``, are not in use).
#: The gateway refuses any other parameter in use by name before a request reaches the engine
#: (see :mod:`lmdeck.providers.capabilities`); the provider checks the same declaration again.
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
                    "logprobs",
                    "top_logprobs",
                    "stream_options.include_usage",
                }
            ),
            "completions": frozenset(
                {
                    "max_tokens",
                    "temperature",
                    "top_p",
                    "n",
                    "stop",
                    "seed",
                    "logprobs",
                    "echo",
                    "stream_options.include_usage",
                }
            ),
        }
    ),
    "embed": Capabilities({"embeddings": frozenset({"encoding_format", "dimensions"})}),
}


def _runtime(ctx: ProviderContext) -> LocalRuntime:
    if ctx.local_runtime is None:
        ctx.local_runtime = LocalRuntime(ctx.settings.local)
    return ctx.local_runtime


def _bad_request(message: str, param: str | None, code: str = "invalid_value") -> UpstreamError:
    """A refusal in OpenAI's error shape, which the gateway passes to the client as it is."""
    body = error_body(message, param=param, code=code)
    return UpstreamError(400, message, retryable=False, body=body, kind="invalid_request")


def _queue_full(exc: QueueFull) -> UpstreamError:
    """A full local queue: the caller's 429 (capacity it competes for), never a failure of the model."""
    return UpstreamError(429, str(exc), retryable=False, retry_after=1.0, kind="queue_full")


def _adapter_refused(exc: AdapterError) -> UpstreamError:
    """An adapter directory that is missing, malformed or made for another model: the message names the fix."""
    return _bad_request(str(exc), None, "invalid_adapter")


def _invalid(param: str, message: str) -> UpstreamError:
    return _bad_request(f"{param}: {message}", param)


def _new_id(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:24]}"


def _embedding_value(vector: list[float], encoding: str | None) -> list[float] | str:
    if encoding == "base64":
        return base64.b64encode(struct.pack(f"<{len(vector)}f", *vector)).decode()
    return vector


def _usage(prompt: int, completion: int) -> Usage:
    return Usage(prompt_tokens=prompt, completion_tokens=completion, total_tokens=prompt + completion)


@dataclass
class _Generated:
    """One finished generation: its text, why it ended, its token count and log-probability entries."""

    text: str
    finish_reason: str
    tokens: int
    logprobs: list[TokenLogprob] = field(default_factory=list)
    prompt_logprobs: list[TokenLogprob | None] | None = None


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
        self.adapter = self._adapter_option(target)
        #: ``adapter`` checked and resolved (symlinks followed), once, in a thread; None until then.
        self._adapter_dir: str | None = None
        self.runtime.acquire()
        self._closed = False
        self._names: TokenText | None = None

    def _adapter_option(self, target: TargetConfig) -> str | None:
        """``options.adapter``: the LoRA adapter directory this target serves its model with, or None."""
        adapter = target.options.get("adapter")
        if adapter is None:
            return None
        if not isinstance(adapter, str) or not adapter.strip():
            raise ConfigError(f"target {target.id}: options.adapter must be the path of a LoRA adapter directory")
        if self.spec.task != "generate":
            raise ConfigError(
                f"target {target.id}: {target.model!r} is an embedding model; adapters serve generative ones"
            )
        if self.quantize != "none":
            raise ConfigError(
                f"target {target.id}: an adapter needs the model unquantized; set options.quantize to none"
            )
        return adapter

    def _refuse_unsupported(self, request: ChatCompletionRequest | CompletionRequest) -> None:
        """The gateway never sends a parameter this model cannot honour; refuse one that arrives another way."""
        refusal = self.capabilities().refusal(request)
        if refusal is not None and refusal.param is not None:
            message = (
                f"local model {self.target.model!r} does not support `{refusal.param}`: remove it, "
                "or route the request to a model that supports it"
            )
            raise _bad_request(message, refusal.param, refusal.code)

    def _refuse_non_text(self, request: ChatCompletionRequest) -> None:
        """A local model reads text only: an image, audio or file part would be dropped unseen, so it is refused."""
        for i, message in enumerate(request.messages):
            if isinstance(message.content, str) or message.content is None:
                continue
            for j, part in enumerate(message.content):
                kind = part.get("type")
                if kind != "text":
                    param = f"messages.{i}.content.{j}"
                    raise _bad_request(
                        f"{param}: local model {self.target.model!r} reads text only, not a {kind!r} part: "
                        "send text parts, or call a model that takes this input",
                        param,
                        "unsupported_content",
                    )

    # -- loading ---------------------------------------------------------------------------------------

    def start_loading(self) -> None:
        """Begin loading this target's model in the background; the gateway calls it as it starts."""
        self.runtime.preload(self.target.model, self.quantize if self.spec.task == "generate" else None)

    def loading(self) -> list[str]:
        """This target's model while its load is under way (``demo``, ``demo (int8)``), else nothing."""
        return [name for name in self.runtime.loading() if name.partition(" (")[0] == self.target.model]

    # -- generation ------------------------------------------------------------------------------

    def _load_budget(self, stream: bool) -> float:
        """Seconds a request waits for the model's load: most of the time the gateway gives the call.

        Kept under the target's ``timeout`` (``ttft_timeout`` for a stream), so that the caller hears
        that the model is still loading rather than a timeout that would count against the target.
        """
        limit = (self.target.ttft_timeout or self.target.timeout) if stream else self.target.timeout
        return limit * LOAD_WAIT_SHARE

    async def _loaded(self, load: Awaitable[T], stream: bool) -> T:
        budget = self._load_budget(stream)
        try:
            async with asyncio.timeout(budget):
                return await load
        except TimeoutError:
            raise UpstreamError(
                503,
                f"local model {self.target.model!r} is still loading after {budget:.0f} s; retry shortly "
                "(GET /health/ready says when every local model is loaded)",
                retryable=False,
                retry_after=LOADING_RETRY_AFTER,
                kind="model_loading",
            ) from None
        except (OSError, RuntimeError, ValueError) as exc:
            raise UpstreamError(
                503, f"local model {self.target.model!r} failed to load: {exc}", retryable=False
            ) from exc

    async def _engine(self, operation: str, stream: bool = False) -> LocalEngine:
        if self.spec.task != "generate":
            raise UnsupportedOperation(f"local:{self.target.model}", operation)
        engine = await self._loaded(self.runtime.engine(self.target.model, self.quantize), stream)
        if self._names is None:
            from lmdeck.local.logprobs import TokenText

            self._names = TokenText(engine.lm.tokenizer)
        return engine

    @property
    def names(self) -> TokenText:
        assert self._names is not None, "names are known once the engine is loaded"
        return self._names

    def _params(
        self, engine: LocalEngine, body: ChatCompletionRequest | CompletionRequest, index: int
    ) -> SamplingParams:
        stop = body.stop_list() if isinstance(body, ChatCompletionRequest) else _stops(body.stop)
        seed = None if body.seed is None else body.seed + index
        temperature = body.temperature if body.temperature is not None else engine.lm.default_temperature
        limit = body.token_limit()
        if isinstance(body, ChatCompletionRequest):
            logprobs = (body.top_logprobs or 0) if body.logprobs else None
            prompt_logprobs = None
        else:
            logprobs = body.logprobs
            prompt_logprobs = body.logprobs if body.echo else None
        return SamplingParams(
            max_tokens=DEFAULT_MAX_TOKENS if limit is None else limit,
            temperature=temperature,
            top_p=body.top_p if body.top_p is not None else 1.0,
            seed=seed,
            stop=tuple(stop),
            logprobs=logprobs,
            prompt_logprobs=prompt_logprobs,
        )

    async def _checked_adapter(self) -> str | None:
        """The adapter directory, checked and resolved on first use in a thread (file system reads stay off
        the event loop) and then reused; a request that finds it gone checks again (:meth:`_adapter_failed`)."""
        if self.adapter is None:
            return None
        if self._adapter_dir is None:
            try:
                self._adapter_dir = str(await anyio.to_thread.run_sync(check_adapter_dir, self.adapter))
            except AdapterError as exc:
                raise _adapter_refused(exc) from None
        return self._adapter_dir

    def _adapter_failed(self, exc: AdapterError) -> UpstreamError:
        self._adapter_dir = None
        return _adapter_refused(exc)

    async def _submit(self, engine: LocalEngine, prompt: list[int], params: SamplingParams) -> GenerationHandle:
        adapter = await self._checked_adapter()
        caller = CURRENT_CALLER.get()
        group, member = (caller.group, caller.key) if caller is not None else ("", "")
        try:
            return engine.submit(prompt, params, group=group, member=member, adapter=adapter, checked=True)
        except AdapterError as exc:
            raise _adapter_refused(exc) from None
        except QueueFull as exc:
            raise _queue_full(exc) from None
        except PromptTooLong as exc:
            raise _bad_request(str(exc), None, "context_length_exceeded") from None
        except EngineClosed as exc:
            raise UpstreamError(503, str(exc), retryable=True) from None

    async def _generate(self, engine: LocalEngine, jobs: list[tuple[list[int], SamplingParams]]) -> list[_Generated]:
        """Submit every job at once (they share the running batch), then wait for each."""
        handles: list[GenerationHandle] = []
        try:
            for prompt, params in jobs:
                handles.append(await self._submit(engine, prompt, params))
            results = []
            for handle in handles:
                text, reason = await self._wait(handle)
                results.append(
                    _Generated(text, reason, handle.completion_tokens, handle.logprobs, handle.prompt_logprobs)
                )
            return results
        finally:
            for handle in handles:
                handle.cancel()

    async def _wait(self, handle: GenerationHandle) -> tuple[str, str]:
        try:
            return await handle.text()
        except AdapterError as exc:
            raise self._adapter_failed(exc) from None
        except QueueFull as exc:
            raise _queue_full(exc) from None
        except EngineClosed as exc:
            raise UpstreamError(503, str(exc), retryable=True) from None
        except Exception as exc:
            raise UpstreamError(500, f"local generation failed: {exc}", retryable=False) from exc

    async def _events(self, handle: GenerationHandle) -> AsyncIterator[TokenEvent]:
        try:
            while True:
                try:
                    event = await handle.next_event()
                except AdapterError as exc:
                    raise self._adapter_failed(exc) from None
                except QueueFull as exc:
                    raise _queue_full(exc) from None
                except EngineClosed as exc:
                    raise UpstreamError(503, str(exc), retryable=True) from None
                except Exception as exc:
                    raise UpstreamError(500, f"local generation failed: {exc}", retryable=False) from exc
                yield event
                if event.finish_reason is not None:
                    return
        finally:
            handle.cancel()

    def _chat_prompt(self, engine: LocalEngine, request: ChatCompletionRequest) -> list[int]:
        messages = [{"role": m.role, "content": m.text()} for m in request.messages]
        return engine.lm.encode(engine.lm.template.render(messages))

    def _check_chat(self, request: ChatCompletionRequest) -> None:
        self._refuse_unsupported(request)
        self._refuse_non_text(request)
        if request.top_logprobs is not None and not request.logprobs:
            raise _invalid("top_logprobs", "needs logprobs=true; set logprobs to true or remove top_logprobs")
        if request.top_logprobs is not None and request.top_logprobs > MAX_CHAT_TOP_LOGPROBS:
            raise _invalid("top_logprobs", f"must be at most {MAX_CHAT_TOP_LOGPROBS}")

    async def count_tokens(self, request: ChatCompletionRequest) -> int:
        """The prompt tokens ``request`` takes on this model: its ``usage.prompt_tokens`` if it were sent."""
        self._refuse_non_text(request)
        engine = await self._engine("token counting")
        return len(self._chat_prompt(engine, request))

    async def chat(self, request: ChatCompletionRequest) -> ChatCompletionResponse:
        self._check_chat(request)
        engine = await self._engine("chat completions")
        prompt = self._chat_prompt(engine, request)
        jobs = [(prompt, self._params(engine, request, i)) for i in range(request.n or 1)]
        results = await self._generate(engine, jobs)
        completion = sum(r.tokens for r in results)
        return ChatCompletionResponse(
            id=_new_id("chatcmpl"),
            created=int(time.time()),
            model=self.target.model,
            choices=[
                ChatChoice(
                    index=i,
                    message={"role": "assistant", "content": r.text},
                    finish_reason=r.finish_reason,
                    logprobs=self._chat_logprobs(request, r.logprobs),
                )
                for i, r in enumerate(results)
            ],
            usage=_usage(len(prompt), completion),
        )

    def _chat_logprobs(self, request: ChatCompletionRequest, entries: list[TokenLogprob]) -> dict[str, Any] | None:
        if not request.logprobs:
            return None
        from lmdeck.providers.local_logprobs import chat_logprobs

        return chat_logprobs(entries, self.names)

    async def stream_chat(self, request: ChatCompletionRequest) -> AsyncIterator[ChatCompletionChunk]:
        if (request.n or 1) > 1:
            raise _bad_request("n > 1 is not supported with stream=true by local models: send n requests", "n")
        self._check_chat(request)
        engine = await self._engine("chat completions", stream=True)
        prompt = self._chat_prompt(engine, request)
        handle = await self._submit(engine, prompt, self._params(engine, request, 0))
        chunk_id, created = _new_id("chatcmpl"), int(time.time())

        def chunk(choices: list[dict[str, Any]], usage: Usage | None = None) -> ChatCompletionChunk:
            return ChatCompletionChunk(
                id=chunk_id, created=created, model=self.target.model, choices=choices, usage=usage
            )

        try:
            events = self._events(handle)
            # The first chunk waits for the first event (a row in the batch): a request refused while it
            # waits (QueueFull) is then still answered with its own status, before any byte of a stream.
            first = await anext(events)
            yield chunk([{"index": 0, "delta": {"role": "assistant", "content": ""}, "finish_reason": None}])
            async for event in _chain(first, events):
                logprobs = self._chat_logprobs(request, list(event.logprobs))
                if event.text or event.logprobs:
                    delta = {"content": event.text}
                    yield chunk([{"index": 0, "delta": delta, "logprobs": logprobs, "finish_reason": None}])
                if event.finish_reason is not None:
                    yield chunk([{"index": 0, "delta": {}, "finish_reason": event.finish_reason}])
        finally:
            # Closing this generator early (the client went away) frees the batch row now.
            handle.cancel()
        # Always sent: the gateway's traces and budgets count it; StreamUsageFilter drops it unless the client asked.
        yield chunk([], _usage(len(prompt), handle.completion_tokens))

    # -- legacy completions --------------------------------------------------------------------------

    def _check_completions(self, request: CompletionRequest) -> None:
        self._refuse_unsupported(request)
        if request.logprobs is not None and request.logprobs > MAX_COMPLETION_LOGPROBS:
            raise _invalid("logprobs", f"must be at most {MAX_COMPLETION_LOGPROBS}")
        if request.max_tokens == 0 and not request.echo:
            raise _invalid("max_tokens", "0 generates nothing: set echo=true to score the prompt, or ask for 1 or more")

    def _completion_logprobs(
        self, request: CompletionRequest, prompt_text: str, prompt: list[int], result: _Generated
    ) -> dict[str, Any] | None:
        if request.logprobs is None:
            return None
        from lmdeck.providers.local_logprobs import completion_logprobs, generated_tokens

        tokens = generated_tokens(result.logprobs, len(prompt_text))
        if request.echo:
            starts = self._prompt_offsets(prompt_text)
            scored = result.prompt_logprobs or [None] * len(prompt)
            tokens = [*zip(prompt, scored, starts, strict=True), *tokens]
        return completion_logprobs(tokens, self.names, request.logprobs)

    def _prompt_offsets(self, text: str) -> list[int]:
        lm = self.runtime.loaded_engine(self.target.model, self.quantize)
        assert lm is not None
        return [start for start, _ in lm.lm.tokenizer.encode(text).offsets]

    async def completions(self, request: CompletionRequest) -> CompletionResponse:
        self._check_completions(request)
        engine = await self._engine("completions")
        texts = request.prompts()
        n = request.n or 1
        capacity = engine.max_queue + engine.max_batch_size
        if len(texts) * n > capacity:
            # A request larger than the whole queue would be a 503 "retry shortly" that never succeeds.
            raise _invalid(
                "n" if n > 1 else "prompt",
                f"{len(texts)} prompts with n={n} is {len(texts) * n} generations; model {self.target.model!r} holds "
                f"at most {capacity} at once (local.max_queue + local.max_batch_size): send fewer prompts or a smaller n",
            )
        prompts = [engine.lm.encode(p) for p in texts]
        jobs = [(prompt, self._params(engine, request, i)) for prompt in prompts for i in range(n)]
        if request.max_tokens == 0 and request.logprobs is None:
            results = [_Generated("", "length", 0) for _ in jobs]  # echo only: nothing to run
        else:
            results = await self._generate(engine, jobs)
        choices = []
        for i, result in enumerate(results):
            text, prompt = texts[i // n], prompts[i // n]
            choices.append(
                {
                    "index": i,
                    "text": (text if request.echo else "") + result.text,
                    "finish_reason": result.finish_reason,
                    "logprobs": self._completion_logprobs(request, text, prompt, result),
                }
            )
        completion = sum(r.tokens for r in results)
        return CompletionResponse(
            id=_new_id("cmpl"),
            created=int(time.time()),
            model=self.target.model,
            choices=choices,
            usage=_usage(sum(len(p) for p in prompts), completion),
        )

    async def stream_completions(self, request: CompletionRequest) -> AsyncIterator[CompletionResponse]:
        prompts = request.prompts()
        if len(prompts) != 1:
            raise _bad_request(
                "stream=true takes a single prompt with local models: send one request per prompt", "prompt"
            )
        if (request.n or 1) > 1:
            raise _bad_request("n > 1 is not supported with stream=true by local models: send n requests", "n")
        self._check_completions(request)
        engine = await self._engine("completions", stream=True)
        text = prompts[0]
        prompt = engine.lm.encode(text)
        params = self._params(engine, request, 0)
        chunk_id, created = _new_id("cmpl"), int(time.time())

        def chunk(choices: list[dict[str, Any]], usage: Usage | None = None) -> CompletionResponse:
            return CompletionResponse(
                id=chunk_id, created=created, model=self.target.model, choices=choices, usage=usage
            )

        if request.max_tokens == 0 and request.logprobs is None:
            yield chunk([{"index": 0, "text": text, "finish_reason": "length", "logprobs": None}])
            yield chunk([], _usage(len(prompt), 0))
            return
        handle = await self._submit(engine, prompt, params)
        echoed = not request.echo
        try:
            async for event in self._events(handle):
                piece = event.text
                logprobs = None
                if request.logprobs is not None:
                    from lmdeck.providers.local_logprobs import completion_logprobs, generated_tokens

                    tokens = generated_tokens(event.logprobs, len(text))
                    if not echoed and handle.prompt_logprobs is not None:
                        scored = zip(prompt, handle.prompt_logprobs, self._prompt_offsets(text), strict=True)
                        tokens = [*scored, *tokens]
                    logprobs = completion_logprobs(tokens, self.names, request.logprobs)
                if not echoed and (handle.prompt_logprobs is not None or request.logprobs is None):
                    piece, echoed = text + piece, True
                if piece or event.logprobs or event.finish_reason is not None or logprobs:
                    choice = {"index": 0, "text": piece, "finish_reason": event.finish_reason, "logprobs": logprobs}
                    yield chunk([choice])
        finally:
            handle.cancel()
        yield chunk([], _usage(len(prompt), handle.completion_tokens))

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
        batcher = await self._loaded(self.runtime.embedder(self.target.model), stream=False)
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


async def _chain(first: T, rest: AsyncIterator[T]) -> AsyncIterator[T]:
    yield first
    async for item in rest:
        yield item


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

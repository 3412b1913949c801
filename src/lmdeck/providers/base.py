"""The Provider protocol: what every upstream adapter implements.

A provider is built once per route target by a factory registered under its
name. It speaks OpenAI's wire shape to the gateway whatever it speaks upstream::

    class EchoProvider:
        def __init__(self, target: TargetConfig, ctx: ProviderContext) -> None:
            self.target = target

        async def chat(self, request: ChatCompletionRequest) -> ChatCompletionResponse: ...
        def stream_chat(self, request: ChatCompletionRequest) -> AsyncIterator[ChatCompletionChunk]: ...
        def capabilities(self) -> Capabilities:
            return Capabilities({"chat": frozenset({"temperature", "max_tokens"})})

    def register(registry: ProviderRegistry) -> None:
        registry.add("echo", EchoProvider)

``capabilities()`` declares what the target honours; the gateway never sends it a request
using anything else (see :mod:`lmdeck.providers.capabilities`).

Errors are raised as :class:`UpstreamError`; its ``retryable`` and
``retry_after`` fields drive the gateway's retries and fallbacks.

A provider whose upstream can continue a partial assistant answer (Anthropic's prefill,
vLLM's ``continue_final_message``) also implements :class:`ContinuingProvider`, which lets
the gateway resume a stream cut part-way on another target.
"""

from __future__ import annotations

import datetime
import email.utils
from collections.abc import AsyncIterator, Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal, Protocol, runtime_checkable

from lmdeck.protocol import (
    ChatCompletionChunk,
    ChatCompletionRequest,
    ChatCompletionResponse,
    CompletionRequest,
    CompletionResponse,
    EmbeddingRequest,
    EmbeddingResponse,
)

if TYPE_CHECKING:
    from lmdeck.local.runtime import LocalRuntime
    from lmdeck.providers.capabilities import Capabilities
    from lmdeck.providers.transport import Transport
    from lmdeck.settings import Settings, TargetConfig

RETRYABLE_STATUS = frozenset({408, 409, 425, 429, 500, 502, 503, 504})


class UpstreamError(Exception):
    """An upstream call failed.

    ``status`` is the upstream's HTTP status (or the status lmdeck maps a
    transport failure to: 502 for a connection error, 504 for a timeout).
    ``message`` is for the operator (the trace and the log) and may name the
    upstream's address or a library's exception; clients are told ``body``'s
    OpenAI error when the target refused the request, else lmdeck's words for
    ``kind`` (see :func:`lmdeck.gateway.errors.upstream_to_api_error`).
    """

    def __init__(
        self,
        status: int,
        message: str,
        *,
        retryable: bool | None = None,
        retry_after: float | None = None,
        body: dict[str, Any] | None = None,
        kind: str = "upstream_error",
    ) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.retryable = status in RETRYABLE_STATUS if retryable is None else retryable
        self.retry_after = retry_after
        self.body = body
        self.kind = kind


class UpstreamTimeout(UpstreamError):
    def __init__(self, message: str, *, kind: str = "timeout") -> None:
        super().__init__(504, message, retryable=True, kind=kind)


class UnsupportedOperation(UpstreamError):
    def __init__(self, provider: str, operation: str) -> None:
        super().__init__(
            400, f"provider {provider!r} does not support {operation}", retryable=False, kind="unsupported"
        )


def retry_after_from(headers: Mapping[str, str]) -> float | None:
    """Seconds an upstream asks to wait: ``retry-after-ms``, ``retry-after`` in seconds or as an HTTP date."""
    millis = headers.get("retry-after-ms")
    if millis:
        try:
            return max(float(millis) / 1000.0, 0.0)
        except ValueError:
            pass
    value = headers.get("retry-after")
    if not value:
        return None
    try:
        return max(float(value), 0.0)
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=datetime.UTC)
    return max((when - datetime.datetime.now(datetime.UTC)).total_seconds(), 0.0)


TransportFailure = Literal["connect_timeout", "timeout", "connect", "broken"]


def _connect_timeout(url: str, timeout: float, detail: str) -> UpstreamError:
    return UpstreamTimeout(
        f"could not connect to the upstream {url} in time; is it running and reachable?", kind="connect_timeout"
    )


def _timeout(url: str, timeout: float, detail: str) -> UpstreamError:
    return UpstreamTimeout(f"the upstream {url} did not answer within {timeout:g}s (the target's `timeout`)")


def _connect(url: str, timeout: float, detail: str) -> UpstreamError:
    return UpstreamError(
        502,
        f"cannot connect to the upstream {url}: {detail}; check the target's base_url",
        retryable=True,
        kind="connect",
    )


def _broken(url: str, timeout: float, detail: str) -> UpstreamError:
    return UpstreamError(502, f"the upstream {url} broke the connection: {detail}", retryable=True, kind="broken")


TRANSPORT_FAILURES: dict[str, Callable[[str, float, str], UpstreamError]] = {
    "connect_timeout": _connect_timeout,
    "timeout": _timeout,
    "connect": _connect,
    "broken": _broken,
}


def transport_error(failure: TransportFailure, url: str, timeout: float, detail: str = "") -> UpstreamError:
    """A failure below HTTP (refused, reset, timed out) as an :class:`UpstreamError`; all are retryable.

    Each transport sorts its own exceptions into a :data:`TransportFailure`, so that every
    transport reports one failure in the same words::

        transport_error("connect", "http://127.0.0.1:9/v1/chat/completions", 30.0, "connection refused")
    """
    return TRANSPORT_FAILURES[failure](url, timeout, detail)


@dataclass
class ProviderContext:
    """What providers share: the settings, one pooled transport to the upstreams, and the local engine.

    ``local_runtime`` is the one :class:`~lmdeck.local.runtime.LocalRuntime` of the gateway, made by the
    first ``local`` target that needs it, so that each local model loads once.

    >>> ProviderContext(settings=Settings(), transport=AiohttpTransport())  # doctest: +SKIP
    """

    settings: Settings
    transport: Transport
    local_runtime: LocalRuntime | None = None


@runtime_checkable
class Provider(Protocol):
    """One upstream target, speaking OpenAI's shapes to the gateway."""

    async def chat(self, request: ChatCompletionRequest) -> ChatCompletionResponse: ...

    def stream_chat(self, request: ChatCompletionRequest) -> AsyncIterator[ChatCompletionChunk]: ...

    async def completions(self, request: CompletionRequest) -> CompletionResponse: ...

    def stream_completions(self, request: CompletionRequest) -> AsyncIterator[CompletionResponse]: ...

    async def embeddings(self, request: EmbeddingRequest) -> EmbeddingResponse: ...

    def capabilities(self) -> Capabilities:
        """The endpoints and request parameters this target honours (see :mod:`lmdeck.providers.capabilities`)."""
        ...

    async def aclose(self) -> None: ...


@runtime_checkable
class ContinuingProvider(Protocol):
    """A provider that can continue an assistant answer another upstream began.

    ``continues_answers`` says whether this target does (it may depend on its options).
    ``stream_continuation`` gets a request whose last message is the assistant's partial
    answer and streams only the text that follows it, in OpenAI chunks::

        partial = ChatMessage(role="assistant", content="The capital of France is")
        request = request.model_copy(update={"messages": [*request.messages, partial]})
        async for chunk in provider.stream_continuation(request): ...   # " Paris."
    """

    continues_answers: bool

    def stream_continuation(self, request: ChatCompletionRequest) -> AsyncIterator[ChatCompletionChunk]: ...


def continues_answers(provider: object) -> bool:
    """Whether ``provider`` can continue a partial answer (see :class:`ContinuingProvider`)."""
    return isinstance(provider, ContinuingProvider) and bool(provider.continues_answers)


@runtime_checkable
class Preloading(Protocol):
    """A provider whose model loads in the background when the gateway starts (the local engine).

    The gateway reports it not ready (``/health/ready``) while any ``loading()`` is not empty.
    """

    def start_loading(self) -> None: ...

    def loading(self) -> list[str]:
        """The models of this target still loading, by name."""
        ...


class ProviderFactory(Protocol):
    def __call__(self, target: TargetConfig, ctx: ProviderContext) -> Provider: ...

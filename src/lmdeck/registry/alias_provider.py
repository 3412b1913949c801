"""The ``registry`` provider: a route target that follows a model alias live.

    routes:
      - name: support
        targets: ["registry:support-bot@production"]    # or {provider: registry, model: ...}

Each call resolves ``support-bot@production`` from the gateway's in-memory
registry (no database read) and hands the request to a provider built for that
version's provider, upstream model and base URL, one per version, kept for
reuse. Moving the alias changes where the next call goes; nothing restarts.
The version's ``parameters`` fill request fields the caller left unset. The target honours
what the provider of the version it resolves to honours, at the time of the request.

The provider registers through the ``lmdeck.providers`` entry point like any other; the
gateway's :class:`~lmdeck.registry.runtime.RegistryRuntime` then binds its
:class:`~lmdeck.registry.resolver.ModelResolver` to it::

    providers = load_providers()                          # "registry": AliasProviders(None)
    providers.add("registry", AliasProviders(resolver))   # what RegistryRuntime does
    RegistryAliasProvider(TargetConfig(provider="registry", model="support-bot@production"), resolver)
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Protocol, TypeVar

from pydantic import BaseModel

from lmdeck.protocol import (
    APIError,
    ChatCompletionChunk,
    ChatCompletionRequest,
    ChatCompletionResponse,
    CompletionRequest,
    CompletionResponse,
    EmbeddingRequest,
    EmbeddingResponse,
)
from lmdeck.providers import Provider, ProviderContext, ProviderRegistry
from lmdeck.providers.capabilities import FORWARDS_ALL, Capabilities, capabilities_of
from lmdeck.settings import ConfigError, TargetConfig

RequestT = TypeVar("RequestT", bound=BaseModel)


class Resolved(Protocol):
    @property
    def key(self) -> tuple[str, int]: ...

    def target(self, outer: TargetConfig) -> TargetConfig: ...

    def apply(self, request: RequestT) -> RequestT: ...


class AliasResolver(Protocol):
    """Resolves ``name@alias`` to a version and builds its provider (:class:`lmdeck.registry.resolver.ModelResolver`)."""

    def check(self, ref: str) -> None: ...

    def resolve(self, ref: str) -> Resolved: ...

    def create_provider(self, target: TargetConfig) -> Provider: ...


class RegistryAliasProvider:
    """Delegates each call to the provider of the version ``target.model`` resolves to now."""

    def __init__(self, target: TargetConfig, resolver: AliasResolver) -> None:
        """Raises :class:`ConfigError` when ``target.model`` is not ``name@alias`` or ``name@version``."""
        try:
            resolver.check(target.model)
        except ValueError as exc:
            raise ConfigError(str(exc)) from None
        self.target = target
        self.resolver = resolver
        self._delegates: dict[tuple[str, int], Provider] = {}

    def _delegate(self, request: RequestT) -> tuple[Provider, RequestT]:
        resolved, provider = self._resolve()
        return provider, resolved.apply(request)

    def _resolve(self) -> tuple[Resolved, Provider]:
        resolved = self.resolver.resolve(self.target.model)
        provider = self._delegates.get(resolved.key)
        if provider is None:
            try:
                provider = self.resolver.create_provider(resolved.target(self.target))
            except ConfigError as exc:
                name, version = resolved.key
                raise APIError(
                    503, f"registry model {name} v{version} cannot be served: {exc}", code="model_unavailable"
                ) from None
            self._delegates[resolved.key] = provider
        return resolved, provider

    async def chat(self, request: ChatCompletionRequest) -> ChatCompletionResponse:
        provider, request = self._delegate(request)
        return await provider.chat(request)

    async def stream_chat(self, request: ChatCompletionRequest) -> AsyncIterator[ChatCompletionChunk]:
        provider, request = self._delegate(request)
        async for chunk in provider.stream_chat(request):
            yield chunk

    async def completions(self, request: CompletionRequest) -> CompletionResponse:
        provider, request = self._delegate(request)
        return await provider.completions(request)

    async def stream_completions(self, request: CompletionRequest) -> AsyncIterator[CompletionResponse]:
        provider, request = self._delegate(request)
        async for chunk in provider.stream_completions(request):
            yield chunk

    async def embeddings(self, request: EmbeddingRequest) -> EmbeddingResponse:
        provider, request = self._delegate(request)
        return await provider.embeddings(request)

    def capabilities(self) -> Capabilities:
        """What the version the alias points at now honours; a reference that does not resolve
        claims everything, so that the call itself answers with the reason."""
        try:
            _, provider = self._resolve()
        except APIError:
            return FORWARDS_ALL
        return capabilities_of(provider)

    async def aclose(self) -> None:
        delegates, self._delegates = list(self._delegates.values()), {}
        for provider in delegates:
            await provider.aclose()


class AliasProviders:
    """The ``registry`` provider's factory, bound to the resolver of one gateway's registry (or to none).

    Unbound (as the entry point registers it), it refuses every target with the fix: a router
    serves registry aliases only inside a gateway, whose registry binds its resolver.
    """

    def __init__(self, resolver: AliasResolver | None = None) -> None:
        self.resolver = resolver

    def __call__(self, target: TargetConfig, ctx: ProviderContext) -> Provider:
        if self.resolver is None:
            raise ConfigError(
                f"target 'registry:{target.model}' needs the gateway's registry: build the router with "
                "lmdeck.app.assembly.build_gateway"
            )
        return RegistryAliasProvider(target, self.resolver)


def register(registry: ProviderRegistry) -> None:
    """The ``lmdeck.providers`` hook: the ``registry`` provider, unbound until a gateway's registry binds it."""
    registry.add("registry", AliasProviders())

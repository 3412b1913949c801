"""Resolving ``name@alias`` to the model version that serves it, and building its provider.

The ``registry`` provider (:mod:`lmdeck.registry.alias_provider`) asks a
:class:`ModelResolver` on every call; the answer comes from the live snapshot
in memory. A request whose bundle hash was stamped is *pinned* to the snapshot
that hash was computed from, so the version named on its trace is the version
that answered it, even when the alias moves in between::

    resolver = ModelResolver(live, providers, provider_ctx)
    resolved = resolver.resolve("support-bot@production")
    provider = resolver.create_provider(resolved.target(outer_target))
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any, Protocol, TypeVar

from pydantic import BaseModel

from lmdeck.protocol.registry import ModelVersionSpec
from lmdeck.providers import Provider, ProviderContext, ProviderRegistry
from lmdeck.registry.live import LiveRegistry
from lmdeck.registry.snapshot import ModelRef, RegistrySnapshot
from lmdeck.registry.versions import Version
from lmdeck.settings import SecretRef, TargetConfig

RequestT = TypeVar("RequestT", bound=BaseModel)
T = TypeVar("T")

#: The snapshot the current request is pinned to (set by the bundle step for the request's task).
_PINNED: ContextVar[RegistrySnapshot | None] = ContextVar("lmdeck_registry_pinned", default=None)


@contextmanager
def pinned(snapshot: RegistrySnapshot) -> Iterator[None]:
    """Resolve aliases against ``snapshot`` inside the block; the previous pin (if any) holds again after it."""
    token = _PINNED.set(snapshot)
    try:
        yield
    finally:
        _PINNED.reset(token)


async def pinned_stream(snapshot: RegistrySnapshot, chunks: AsyncIterator[T]) -> AsyncIterator[T]:
    """``chunks``, each pulled with aliases resolved against ``snapshot``.

    A stream's provider runs when a chunk is pulled, after the step that pinned the request
    returned; the pin is set and reset around each pull, so nothing of it stays in the
    context of whoever iterates the stream.
    """
    iterator = aiter(chunks)
    while True:
        with pinned(snapshot):
            try:
                chunk = await anext(iterator)
            except StopAsyncIteration:
                return
        yield chunk


class VersionCredentials(Protocol):
    """Which credential a stored version's calls carry (:class:`lmdeck.policy.credentials.CredentialGate`)."""

    def api_key_for(self, spec: ModelVersionSpec, created_by: str | None) -> SecretRef | None: ...

    def adapter_for(self, spec: ModelVersionSpec, created_by: str | None) -> str | None: ...


class NoCredentials:
    """Versions' calls carry no credential (a resolver built without the policy services)."""

    def api_key_for(self, spec: ModelVersionSpec, created_by: str | None) -> SecretRef | None:
        return None

    def adapter_for(self, spec: ModelVersionSpec, created_by: str | None) -> str | None:
        adapter = spec.adapter if spec.adapter is not None else spec.options.get("adapter")
        return adapter if isinstance(adapter, str) else None


def delegate_target(
    version: Version[ModelVersionSpec], outer: TargetConfig, credentials: VersionCredentials | None = None
) -> TargetConfig:
    """The target a model version stands for: its provider and model, the route target's limits, the
    credential the gateway attaches (never the version's own reference unless an admin wrote it) and the
    LoRA adapter it is served with (``spec.adapter`` as ``options["adapter"]``).

    Raises :class:`ConfigError` naming the fix when the version asks for a credential or an adapter
    directory it may not have.
    """
    spec = version.spec
    checks = credentials or NoCredentials()
    api_key = checks.api_key_for(spec, version.created_by)
    adapter = checks.adapter_for(spec, version.created_by)
    options = {**outer.options, **spec.options}
    if spec.artifact_path:
        options["artifact_path"] = spec.artifact_path
    if adapter is not None:
        options["adapter"] = adapter
    return TargetConfig(
        provider=spec.provider,
        model=spec.model or spec.artifact_path or version.name,
        base_url=spec.base_url,
        api_key=api_key,
        weight=outer.weight,
        timeout=outer.timeout,
        ttft_timeout=outer.ttft_timeout,
        max_retries=outer.max_retries,
        headers=outer.headers,
        options=options,
    )


def with_defaults(request: RequestT, defaults: dict[str, Any]) -> RequestT:
    """``request`` with ``defaults`` filling the fields it did not set."""
    if not defaults:
        return request
    given = request.model_dump(exclude_unset=True)
    if all(key in given for key in defaults):
        return request
    return type(request).model_validate({**defaults, **given})


@dataclass(frozen=True)
class ResolvedModel:
    """The version an alias named at the time of the call."""

    version: Version[ModelVersionSpec]
    credentials: VersionCredentials | None = None

    @property
    def key(self) -> tuple[str, int]:
        return (self.version.name, self.version.version)

    def target(self, outer: TargetConfig) -> TargetConfig:
        return delegate_target(self.version, outer, self.credentials)

    def apply(self, request: RequestT) -> RequestT:
        return with_defaults(request, self.version.spec.parameters)


class ModelResolver:
    """What the ``registry`` provider of a gateway resolves aliases with (bound by its ``RegistryRuntime``)."""

    def __init__(
        self,
        live: LiveRegistry,
        providers: ProviderRegistry,
        ctx: ProviderContext,
        credentials: VersionCredentials | None = None,
    ) -> None:
        self.live = live
        self.providers = providers
        self.ctx = ctx
        self.credentials = credentials

    def check(self, ref: str) -> None:
        """Raise ValueError when ``ref`` is not ``name@alias`` or ``name@version``."""
        ModelRef.parse(ref)

    @property
    def snapshot(self) -> RegistrySnapshot:
        return _PINNED.get() or self.live.snapshot

    def resolve(self, ref: str) -> ResolvedModel:
        return ResolvedModel(self.snapshot.model(ref), self.credentials)

    def create_provider(self, target: TargetConfig) -> Provider:
        return self.providers.create(target, self.ctx)

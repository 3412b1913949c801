"""The ``registry`` provider: registered by its entry point, bound to the resolver of a gateway's registry."""

from __future__ import annotations

import logging
import tomllib
from collections.abc import AsyncIterator
from importlib.metadata import EntryPoint
from pathlib import Path
from typing import Any

import httpx
import pytest

from lmdeck.db import Database
from lmdeck.plugins import call_hooks
from lmdeck.protocol import APIError, ChatCompletionRequest
from lmdeck.providers import ProviderContext, ProviderRegistry
from lmdeck.providers.capabilities import FORWARDS_ALL, Capabilities, Refusal, capabilities_of
from lmdeck.providers.registry import ENTRY_POINT_GROUP
from lmdeck.providers.transport_httpx import HttpxTransport
from lmdeck.registry.alias_provider import AliasProviders, RegistryAliasProvider
from lmdeck.registry.runtime import RegistryRuntime
from lmdeck.settings import ConfigError, Settings, TargetConfig
from lmdeck.testing.scripted_provider import ScriptedProvider

PYPROJECT = Path(__file__).resolve().parents[2] / "pyproject.toml"
TOOLS = [{"type": "function", "function": {"name": "add", "parameters": {"type": "object"}}}]
ALIAS = TargetConfig(provider="registry", model="support@production")


def chat(**fields: Any) -> ChatCompletionRequest:
    body = {"model": "m", "messages": [{"role": "user", "content": "hi"}], **fields}
    return ChatCompletionRequest.model_validate(body)


@pytest.fixture
async def ctx(tmp_path: Path) -> AsyncIterator[ProviderContext]:
    async with httpx.AsyncClient() as http:
        yield ProviderContext(settings=Settings(data_dir=tmp_path), transport=HttpxTransport(http))


def registered() -> ProviderRegistry:
    """The ``registry`` provider loaded the way ``load_providers`` loads it: from the declared entry point."""
    value = tomllib.loads(PYPROJECT.read_text())["project"]["entry-points"][ENTRY_POINT_GROUP]["registry"]
    assert value == "lmdeck.registry.alias_provider:register"
    hook = EntryPoint(name="registry", value=value, group=ENTRY_POINT_GROUP)
    providers = call_hooks([hook], ProviderRegistry(), remedy=str, kind="provider", log=logging.getLogger())
    assert "registry" in providers and not providers.unavailable
    return providers


def test_unbound_the_provider_names_the_fix(ctx: ProviderContext) -> None:
    with pytest.raises(ConfigError, match=r"needs the gateway's registry: .*build_gateway"):
        registered().create(ALIAS, ctx)


def test_a_registry_runtime_binds_its_resolver(ctx: ProviderContext, tmp_path: Path) -> None:
    db = Database(f"sqlite:///{(tmp_path / 'registry.db').as_posix()}")
    db.migrate()
    try:
        providers = registered()
        runtime = RegistryRuntime(ctx.settings, db, providers, ctx)
        provider = providers.create(ALIAS, ctx)
        assert isinstance(provider, RegistryAliasProvider) and provider.resolver is runtime.resolver
        with pytest.raises(ConfigError, match="needs an alias or a version"):
            providers.create(TargetConfig(provider="registry", model="no-alias"), ctx)
    finally:
        db.dispose()


def test_a_runtime_adds_no_registry_provider_the_plugins_left_out(ctx: ProviderContext, tmp_path: Path) -> None:
    db = Database(f"sqlite:///{(tmp_path / 'registry.db').as_posix()}")
    db.migrate()
    try:
        providers = ProviderRegistry()
        RegistryRuntime(ctx.settings, db, providers, ctx)
        assert "registry" not in providers
    finally:
        db.dispose()


class MovableAlias:
    """A FAKE registry resolver: ``support@production`` points at ``version``; each version has a provider."""

    def __init__(self, providers: dict[int, Any]) -> None:
        self.providers = providers
        self.version: int | None = 1

    def check(self, ref: str) -> None:
        return None

    def resolve(self, ref: str) -> Any:
        if self.version is None:
            raise APIError(404, f"model alias {ref!r} does not exist", code="model_not_found")
        version = self.version

        class Resolved:
            key = ("support", version)

            def target(self, outer: TargetConfig) -> TargetConfig:
                return TargetConfig(provider="scripted", model=f"v{version}")

            def apply(self, request: Any) -> Any:
                return request

        return Resolved()

    def create_provider(self, target: TargetConfig) -> Any:
        return self.providers[int(target.model[1:])]


def test_a_registry_alias_honours_what_its_version_honours_now(ctx: ProviderContext) -> None:
    plain = Capabilities({"chat": frozenset({"temperature"})})
    alias = MovableAlias({1: ScriptedProvider("v1", declared=plain), 2: ScriptedProvider("v2")})
    provider = AliasProviders(alias)(ALIAS, ctx)
    assert capabilities_of(provider).refusal(chat(tools=TOOLS)) == Refusal("chat", "tools")
    alias.version = 2
    assert capabilities_of(provider).refusal(chat(tools=TOOLS)) is None
    alias.version = None
    assert capabilities_of(provider) is FORWARDS_ALL, "an alias that does not resolve lets the call say why"

"""The provider registry: factories by name, and where each provider sends calls by default."""

from __future__ import annotations

from typing import ClassVar

import pytest

from lmdeck.providers import ProviderContext, ProviderRegistry
from lmdeck.providers.anthropic import AnthropicProvider
from lmdeck.providers.openai import OpenAIProvider
from lmdeck.settings import ConfigError, Settings, TargetConfig


class Elsewhere:
    """A FAKE provider class declaring a default upstream."""

    default_base_url: ClassVar[str] = "https://llm.example.com/v1"


def test_each_provider_says_where_its_calls_go_by_default() -> None:
    providers = ProviderRegistry()
    providers.add("openai", OpenAIProvider)
    providers.add("anthropic", AnthropicProvider)
    providers.add("elsewhere", Elsewhere)  # type: ignore[arg-type]
    providers.add("plain", lambda target, ctx: None)  # type: ignore[arg-type,return-value]
    assert providers.default_base_url("openai") == "https://api.openai.com/v1"
    assert providers.default_base_url("anthropic") == "https://api.anthropic.com"
    assert providers.default_base_url("elsewhere") == "https://llm.example.com/v1"
    assert providers.default_base_url("plain") is None
    assert providers.default_base_url("unknown") is None


def test_an_unknown_provider_names_the_fix() -> None:
    providers = ProviderRegistry()
    providers.unavailable["gone"] = "No module named 'gone'; install lmdeck[gone]"
    ctx = ProviderContext(settings=Settings(), transport=None)  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match=r"install lmdeck\[gone\]"):
        providers.create(TargetConfig(provider="gone", model="m"), ctx)
    with pytest.raises(ConfigError, match="install the plugin that provides it"):
        providers.create(TargetConfig(provider="other", model="m"), ctx)

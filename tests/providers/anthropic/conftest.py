"""A provider wired to the FAKE Anthropic API in process (no socket)."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest

from lmdeck.providers.anthropic import AnthropicProvider
from lmdeck.providers.base import ProviderContext
from lmdeck.providers.transport_httpx import HttpxTransport
from lmdeck.settings import Settings, TargetConfig
from lmdeck.testing.fake_anthropic import FakeAnthropic

FakePair = tuple[FakeAnthropic, AnthropicProvider]


@pytest.fixture
async def fake() -> AsyncIterator[FakePair]:
    """The fake (its ``requests``, ``script``) and a provider whose target points at it."""
    app = FakeAnthropic(api_key="sk-ant")
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app)) as http:
        target = TargetConfig(
            provider="anthropic", model="claude-x", base_url="http://fake", headers={"x-api-key": "sk-ant"}
        )
        yield app, AnthropicProvider(target, ProviderContext(settings=Settings(), transport=HttpxTransport(http)))

"""Hostile or careless inputs to pricing, budgets and the Anthropic translation.

Money inputs that cannot be held exactly (infinite, NaN, negative, beyond a 64-bit count of
micro-dollars, finer than a micro-dollar in a price) are refused with a 400 or a config error,
never stored or turned into a 500. Fields a client adds to smuggle Anthropic-only parameters
past the translation (``system``, ``thinking``, ``anthropic_beta``) are refused by name and
never reach the upstream.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
import pytest
from pydantic import ValidationError

from lmdeck.protocol import APIError, ChatCompletionRequest
from lmdeck.providers.anthropic import AnthropicProvider
from lmdeck.providers.base import ProviderContext
from lmdeck.providers.transport_httpx import HttpxTransport
from lmdeck.settings import ModelPrice, Settings, TargetConfig
from lmdeck.testing.fake_anthropic import FakeAnthropic
from policy.deck import ADMIN_ENV, ADMIN_KEY, policy_settings, started_deck


@pytest.mark.parametrize(
    "limit",
    [
        {"limit_usd": 1e30},
        {"limit_usd": "NaN"},
        {"limit_usd": "Infinity"},
        {"limit_usd": -0.01},
        {"limit_usd": "ten"},
        {"limit_micros": -1},
        {"limit_micros": 2**63},
        {"limit_micros": 1.5},
        {},
    ],
)
async def test_budget_limits_that_cannot_be_held_exactly_are_400(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, limit: dict[str, Any]
) -> None:
    monkeypatch.setenv(ADMIN_ENV, ADMIN_KEY)
    async with started_deck(policy_settings(tmp_path)) as deck:
        key = await deck.new_key(name="k")
        body = {"scope": "key", "subject_id": key["id"], "period": "day", **limit}
        response = await deck.admin("PUT", "/api/budgets", json=body)
        assert response.status_code == 400, response.text
        assert (await deck.admin("GET", "/api/budgets")).json()["data"] == []


@pytest.mark.parametrize(
    "price", [{"input": -1, "output": 1}, {"input": "0.0000001", "output": 1}, {"input": "inf", "output": 1}]
)
def test_prices_that_cannot_be_held_exactly_are_refused_at_load(price: dict[str, Any]) -> None:
    with pytest.raises(ValidationError):
        ModelPrice.model_validate(price)
    with pytest.raises(ValidationError):
        Settings.model_validate({"policy": {"pricing": {"m": price}}})


@pytest.mark.parametrize("smuggled", ["system", "thinking", "anthropic_beta", "top_k_override", "container"])
async def test_anthropic_only_fields_are_refused_by_name_and_never_sent(smuggled: str) -> None:
    app = FakeAnthropic()
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app)) as http:
        target = TargetConfig(provider="anthropic", model="claude-x", base_url="http://fake")
        provider = AnthropicProvider(target, ProviderContext(settings=Settings(), transport=HttpxTransport(http)))
        request = ChatCompletionRequest.model_validate(
            {"model": "c", "messages": [{"role": "user", "content": "hi"}], smuggled: {"type": "enabled"}}
        )
        with pytest.raises(APIError) as info:
            await provider.chat(request)
    assert info.value.status == 400 and info.value.param == smuggled
    assert app.requests == []

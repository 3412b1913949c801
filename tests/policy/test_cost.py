"""Pricing and cost: the table, overrides, and the cost each trace records."""

from __future__ import annotations

from pathlib import Path

import pytest

from lmdeck.policy.pricing import DEFAULT_PRICES, PriceTable, cost_of
from lmdeck.settings import ModelPrice
from policy.deck import ADMIN_KEY, fake_route, policy_settings, started_deck


def test_dated_snapshots_are_priced_as_their_family() -> None:
    prices = PriceTable()
    assert prices.price("gpt-4o-2024-08-06") == DEFAULT_PRICES["gpt-4o"]
    assert prices.price("gpt-4o-mini-2024-07-18") == DEFAULT_PRICES["gpt-4o-mini"]
    assert prices.price("openai/gpt-4.1-mini") == DEFAULT_PRICES["gpt-4.1-mini"]
    assert prices.price("claude-3-5-haiku-20241022") == DEFAULT_PRICES["claude-3-5-haiku"]


def test_self_hosted_and_unknown_models_cost_nothing() -> None:
    prices = PriceTable()
    assert prices.cost("demo", input_tokens=1000, output_tokens=1000, provider="local") == 0
    assert prices.cost("meta-llama/Llama-3.1-8B-Instruct", input_tokens=10**6, output_tokens=10**6) == 0


def test_overrides_win_and_may_name_the_provider() -> None:
    prices = PriceTable({"gpt-4o": ModelPrice(input=1, output=2), "vllm:llama": ModelPrice(input=0.1, output=0.2)})
    assert prices.cost("gpt-4o", input_tokens=10**6, output_tokens=10**6) == pytest.approx(3.0)
    assert prices.price("llama", "vllm").input == 0.1
    assert prices.price("llama", "openai").input == 0


def test_cached_input_is_priced_apart() -> None:
    price = DEFAULT_PRICES["gpt-4o"]
    cost = cost_of(price, input_tokens=1_000_000, output_tokens=0, cached_tokens=400_000)
    assert cost == pytest.approx(0.6 * 2.50 + 0.4 * 1.25)
    assert cost_of(ModelPrice(input=2, output=0), 1_000_000, 0, 500_000) == pytest.approx(2.0)


async def test_each_trace_records_its_cost_stream_or_not(tmp_path: Path) -> None:
    settings = policy_settings(tmp_path, routes=[fake_route(prompt_tokens=100, completion_tokens=10)])
    async with started_deck(settings) as deck:
        assert (await deck.chat(ADMIN_KEY)).status_code == 200
        streamed = await deck.chat(ADMIN_KEY, stream=True, stream_options={"include_usage": True})
        assert streamed.status_code == 200
        # A client that did not ask for usage does not get it, but the trace is still priced.
        quiet = await deck.chat(ADMIN_KEY, stream=True)
        assert '"usage"' not in quiet.text
        costs = [t.cost for t in deck.sink.records]
        assert costs == pytest.approx([0.12, 0.12, 0.12])  # 100 x $0.001 + 10 x $0.002


async def test_a_stream_without_usage_is_estimated_from_what_was_sent(tmp_path: Path) -> None:
    settings = policy_settings(tmp_path, routes=[fake_route(no_stream_usage=True)])
    async with started_deck(settings) as deck:
        assert (await deck.chat(ADMIN_KEY, stream=True)).status_code == 200
        (trace,) = deck.sink.records
        # "hi": a prompt estimate of 1 + 7 format tokens; two pieces of text streamed.
        assert trace.cost == pytest.approx(8 * 0.001 + 2 * 0.002)
        # The trace's tokens are the ones priced, not 0 beside a non-zero cost.
        assert (trace.input_tokens, trace.output_tokens) == (8, 2) and trace.metadata["usage_estimated"] is True


async def test_failed_requests_cost_nothing(tmp_path: Path) -> None:
    async with started_deck(policy_settings(tmp_path)) as deck:
        assert (await deck.chat(ADMIN_KEY, model="nope")).status_code == 404
        assert [t.cost for t in deck.sink.records] == [0.0]


async def test_a_target_the_table_does_not_know_is_priced_by_the_model_that_answered(tmp_path: Path) -> None:
    # A registry alias target names "bot@production"; the upstream answers as the real model.
    settings = policy_settings(
        tmp_path,
        routes=[fake_route(model="bot@production", prompt_tokens=100, completion_tokens=10)],
    )
    async with started_deck(settings) as deck:
        provider = deck.gateway.router.get("fake-gpt").targets[0].provider  # type: ignore[union-attr]
        provider.target = provider.target.model_copy(update={"model": "gpt-4o"})  # type: ignore[attr-defined]
        assert (await deck.chat(ADMIN_KEY)).status_code == 200
        assert (await deck.chat(ADMIN_KEY, stream=True)).status_code == 200
        expected = (100 * 2.50 + 10 * 10.00) / 1_000_000
        assert [t.cost for t in deck.sink.records] == pytest.approx([expected, expected])

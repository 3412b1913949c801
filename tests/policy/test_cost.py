"""Pricing and cost: the table, overrides, cache reads and writes, and the cost each trace records.

Costs are whole micro-dollars: each trace's ``cost_micros`` is compared exactly.
"""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

import pytest
from pydantic import ValidationError

from lmdeck.policy.metering import Usage, usage_of
from lmdeck.policy.pricing import DEFAULT_PRICES, Price, PriceTable
from lmdeck.settings import ModelPrice
from policy.deck import ADMIN_KEY, fake_route, policy_settings, started_deck


def test_dated_snapshots_are_priced_as_their_family() -> None:
    prices = PriceTable()
    assert prices.price("gpt-4o-2024-08-06") == Price.of(DEFAULT_PRICES["gpt-4o"])
    assert prices.price("gpt-4o-mini-2024-07-18") == Price.of(DEFAULT_PRICES["gpt-4o-mini"])
    assert prices.price("openai/gpt-4.1-mini") == Price.of(DEFAULT_PRICES["gpt-4.1-mini"])
    assert prices.price("claude-3-5-haiku-20241022") == Price.of(DEFAULT_PRICES["claude-3-5-haiku"])


def test_self_hosted_and_unknown_models_cost_nothing() -> None:
    prices = PriceTable()
    assert prices.cost("demo", Usage(input_tokens=1000, output_tokens=1000), provider="local") == 0
    assert prices.cost("meta-llama/Llama-3.1-8B-Instruct", Usage(input_tokens=10**6, output_tokens=10**6)) == 0


def test_overrides_win_and_may_name_the_provider() -> None:
    prices = PriceTable({"gpt-4o": ModelPrice(input=1, output=2), "vllm:llama": ModelPrice(input=0.1, output=0.2)})
    assert prices.cost("gpt-4o", Usage(input_tokens=10**6, output_tokens=10**6)) == 3_000_000
    assert prices.price("llama", "vllm").input == 100_000
    assert prices.price("llama", "openai").input == 0


def test_prices_are_read_as_decimals_to_the_micro_dollar() -> None:
    assert ModelPrice(input=0.1, output="0.000001").input == Decimal("0.1")
    assert Price.of(ModelPrice(input=0.1, output=0.2)) == Price(100_000, 200_000, 100_000, 100_000, 100_000)
    with pytest.raises(ValidationError, match="decimal places"):
        ModelPrice(input="0.0000001", output=0)


def test_openai_cache_reads_are_priced_apart() -> None:
    price = Price.of(DEFAULT_PRICES["gpt-4o"])  # $2.50 in, $1.25 a cached token
    assert price.cost(Usage(input_tokens=1_000_000, cached_tokens=400_000)) == 600_000 * 2.5 + 400_000 * 1.25
    assert (
        Price.of(ModelPrice(input=2, output=0)).cost(Usage(input_tokens=1_000_000, cached_tokens=500_000)) == 2_000_000
    )


def test_anthropic_cache_writes_and_reads_have_their_own_prices() -> None:
    row = DEFAULT_PRICES["claude-sonnet-4-5"]  # $3 in: reads 0.1x, 5-minute writes 1.25x, 1-hour writes 2x
    assert (row.cached_input, row.cache_write, row.cache_write_1h) == (Decimal("0.3"), Decimal("3.75"), Decimal("6"))
    usage = Usage(
        input_tokens=10_000, output_tokens=100, cached_tokens=4000, cache_write_tokens=3000, cache_write_1h_tokens=2000
    )
    # 1000 plain x $3 + 4000 read x $0.30 + 3000 written x $3.75 + 2000 written (1h) x $6 + 100 out x $15, per 1M
    assert Price.of(row).cost(usage) == 3000 + 1200 + 11250 + 12000 + 1500
    # Without cache prices of its own, a row prices reads and writes as input.
    plain = Price.of(ModelPrice(input=3, output=15))
    assert plain.cost(usage) == 30_000 + 1500


def test_usage_reads_cache_counts_in_openais_shape_and_anthropics_fields() -> None:
    usage = usage_of(
        {
            "usage": {
                "prompt_tokens": 100,
                "completion_tokens": 5,
                "prompt_tokens_details": {"cached_tokens": 40},
                "cache_creation_input_tokens": 30,
                "cache_creation": {"ephemeral_5m_input_tokens": 10, "ephemeral_1h_input_tokens": 20},
            }
        }
    )
    assert usage == Usage(
        input_tokens=100, output_tokens=5, cached_tokens=40, cache_write_tokens=10, cache_write_1h_tokens=20
    )


def test_a_cost_is_rounded_once_half_to_even_and_a_bound_up() -> None:
    price = Price.of(ModelPrice(input="0.5", output="1.5"))  # half a micro-dollar per input token
    assert [price.cost(Usage(input_tokens=n)) for n in (1, 2, 3, 5)] == [0, 1, 2, 2]
    assert price.bound(1, 0) == 1 and price.bound(2, 1) == 3  # 1 + 1.5, rounded up
    writes = Price.of(DEFAULT_PRICES["claude-haiku-4-5"])
    assert writes.bound(1000, 0, cache_writes=True) == 2000 and writes.bound(1000, 0) == 1000


async def test_each_trace_records_its_cost_stream_or_not(tmp_path: Path) -> None:
    settings = policy_settings(tmp_path, routes=[fake_route(prompt_tokens=100, completion_tokens=10)])
    async with started_deck(settings) as deck:
        assert (await deck.chat(ADMIN_KEY)).status_code == 200
        streamed = await deck.chat(ADMIN_KEY, stream=True, stream_options={"include_usage": True})
        assert streamed.status_code == 200
        # A client that did not ask for usage does not get it, but the trace is still priced.
        quiet = await deck.chat(ADMIN_KEY, stream=True)
        assert '"usage"' not in quiet.text
        costs = [t.cost_micros for t in deck.sink.records]
        assert costs == [120_000] * 3  # 100 x $0.001 + 10 x $0.002


async def test_cached_tokens_are_priced_on_the_trace(tmp_path: Path) -> None:
    settings = policy_settings(tmp_path, routes=[fake_route(prompt_tokens=100, completion_tokens=10, cached_tokens=60)])
    async with started_deck(settings) as deck:
        assert (await deck.chat(ADMIN_KEY)).status_code == 200
        (trace,) = deck.sink.records
        assert trace.cached_tokens == 60
        assert trace.cost_micros == 40 * 1000 + 60 * 100 + 10 * 2000


async def test_a_stream_without_usage_is_estimated_from_what_was_sent(tmp_path: Path) -> None:
    settings = policy_settings(tmp_path, routes=[fake_route(no_stream_usage=True)])
    async with started_deck(settings) as deck:
        assert (await deck.chat(ADMIN_KEY, stream=True)).status_code == 200
        (trace,) = deck.sink.records
        # "hi": a prompt estimate of 1 + 7 format tokens; two pieces of text streamed.
        assert trace.cost_micros == 8 * 1000 + 2 * 2000
        # The trace's tokens are the ones priced, not 0 beside a non-zero cost.
        assert (trace.input_tokens, trace.output_tokens) == (8, 2) and trace.metadata["usage_estimated"] is True


async def test_failed_requests_cost_nothing(tmp_path: Path) -> None:
    async with started_deck(policy_settings(tmp_path)) as deck:
        assert (await deck.chat(ADMIN_KEY, model="nope")).status_code == 404
        assert [t.cost_micros for t in deck.sink.records] == [0]


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
        expected = 100 * 2.5 + 10 * 10  # $2.50 and $10.00 per 1M tokens, in micro-dollars
        assert [t.cost_micros for t in deck.sink.records] == [expected, expected]

"""The price memo stays bounded: it is keyed by model names, which can come from an upstream's answer."""

from __future__ import annotations

from lmdeck.policy.pricing import MEMO_SIZE, PriceTable


def test_the_price_memo_stays_bounded_whatever_model_names_upstreams_report() -> None:
    table = PriceTable()
    for i in range(MEMO_SIZE * 5):
        table.price(f"reported-model-{i}", "openai")
    assert len(table._memo) <= MEMO_SIZE
    assert table.price("gpt-4o", "openai") == table.price("gpt-4o-2024-08-06", "openai")

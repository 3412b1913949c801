"""``as_tiered`` answers as ``isinstance(strategy, TieredStrategy)`` does, for every built-in strategy."""

from __future__ import annotations

from typing import Any

import pytest

from lmdeck.gateway.routing.strategy import StrategyRegistry
from lmdeck.gateway.routing.tiers import TieredStrategy, as_tiered

BUILTINS = StrategyRegistry.builtin()


@pytest.mark.parametrize("name", BUILTINS.names())
def test_as_tiered_agrees_with_the_protocol_check(name: str) -> None:
    strategy = BUILTINS.create(name)
    expected = isinstance(strategy, TieredStrategy)
    assert (as_tiered(strategy) is strategy) is expected
    assert name not in {"cascade", "learned"} or expected


class _HalfTiered:
    """A FAKE strategy with a ``serve`` method but neither ``prepare`` nor ``stream_mode``."""

    name = "half"

    async def serve(self, *args: Any) -> Any:
        return None


def test_a_strategy_missing_a_method_or_the_name_is_not_tiered() -> None:
    assert as_tiered(None) is None
    assert as_tiered(_HalfTiered()) is None
    assert not isinstance(_HalfTiered(), TieredStrategy)

"""The three strategies and their registry."""

from __future__ import annotations

import random
from collections import Counter

import pytest

from lmdeck.gateway.routing.latency import LatencyEWMA
from lmdeck.gateway.routing.least_inflight import LeastInFlight
from lmdeck.gateway.routing.strategy import StrategyRegistry
from lmdeck.gateway.routing.weighted import WeightedRandom
from lmdeck.settings import ConfigError
from lmdeck.testing.scripted_provider import target


def test_registry_finds_builtins_and_names_the_choices() -> None:
    registry = StrategyRegistry.builtin()
    assert isinstance(registry.create("weighted"), WeightedRandom)
    assert isinstance(registry.create("least-inflight"), LeastInFlight)
    assert isinstance(registry.create("latency"), LatencyEWMA)
    with pytest.raises(ConfigError, match="cascade, latency, learned, least-inflight, weighted"):
        registry.create("round-robin")


def test_weighted_follows_weights_and_keeps_spares_last() -> None:
    heavy, light, spare = target("heavy", weight=3), target("light", weight=1), target("spare", weight=0)
    rng = random.Random(7)
    firsts = Counter(WeightedRandom().order([heavy, light, spare], rng)[0].id for _ in range(4000))
    assert set(firsts) == {heavy.id, light.id}
    assert 2.5 < firsts[heavy.id] / firsts[light.id] < 3.5
    order = WeightedRandom().order([spare, heavy, light], rng)
    assert order[-1] is spare and len(order) == 3


def test_least_inflight_prefers_the_idle_target() -> None:
    busy, idle = target("busy"), target("idle")
    busy.in_flight, idle.in_flight = 5, 1
    assert [t.id for t in LeastInFlight().order([busy, idle], random.Random(0))] == [idle.id, busy.id]
    busy.in_flight = idle.in_flight = 0
    firsts = Counter(LeastInFlight().order([busy, idle], random.Random(i))[0].id for i in range(200))
    assert len(firsts) == 2  # ties spread the load


def test_latency_prefers_fast_and_measures_unknown_targets() -> None:
    slow, fast, new = target("slow"), target("fast"), target("new")
    for ms in (100, 120):
        slow.observe_latency(ms)
    fast.observe_latency(10)
    strategy = LatencyEWMA(explore=0.0)
    assert [t.id for t in strategy.order([slow, fast, new], random.Random(0))] == [new.id, fast.id, slow.id]
    assert slow.latency_ewma_ms == pytest.approx(0.3 * 120 + 0.7 * 100)
    explored = {LatencyEWMA(explore=1.0).order([slow, fast], random.Random(i))[0].id for i in range(50)}
    assert explored == {slow.id, fast.id}

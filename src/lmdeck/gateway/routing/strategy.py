"""Strategies: the order in which a route's targets are tried, chosen by name.

A strategy ranks the targets for one request; the dispatcher tries them in that
order (skipping those whose circuit is open) as it retries. Each built-in lives
in its own module and is found by registry lookup from ``RouteConfig.strategy``::

    class FirstListed:
        name = "first"

        def order(self, targets, rng):
            return list(targets)

    strategies = StrategyRegistry.builtin()
    strategies.add("first", FirstListed)
    strategies.create("first")
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from lmdeck.gateway.routing.state import Strategy
from lmdeck.settings import ConfigError

if TYPE_CHECKING:
    from lmdeck.gateway.routing.confidence import ConfidenceChecks
    from lmdeck.gateway.routing.learned import LearnedRouters

StrategyFactory = Callable[[], Strategy]


class StrategyRegistry:
    """Strategy factories by name.

    >>> StrategyRegistry.builtin().names()
    ['cascade', 'latency', 'learned', 'least-inflight', 'weighted']
    """

    def __init__(self) -> None:
        self._factories: dict[str, StrategyFactory] = {}

    def add(self, name: str, factory: StrategyFactory) -> None:
        self._factories[name] = factory

    def names(self) -> list[str]:
        return sorted(self._factories)

    def create(self, name: str) -> Strategy:
        try:
            return self._factories[name]()
        except KeyError:
            known = ", ".join(self.names())
            raise ConfigError(f"unknown routing strategy {name!r}: use one of {known}") from None

    @classmethod
    def builtin(cls, checks: ConfidenceChecks | None = None, routers: LearnedRouters | None = None) -> StrategyRegistry:
        """The built-in strategies; ``cascade`` judges answers with ``checks`` (default: the gateway's own),
        ``learned`` loads its classifiers through ``routers`` (default: files only, no embedder)."""
        from lmdeck.gateway.routing.cascade import CascadeStrategy
        from lmdeck.gateway.routing.confidence import ConfidenceChecks
        from lmdeck.gateway.routing.latency import LatencyEWMA
        from lmdeck.gateway.routing.learned import LearnedRouters, LearnedStrategy
        from lmdeck.gateway.routing.least_inflight import LeastInFlight
        from lmdeck.gateway.routing.weighted import WeightedRandom

        registry = cls()
        for strategy in (WeightedRandom, LeastInFlight, LatencyEWMA):
            registry.add(strategy.name, strategy)
        cascade_checks = checks or ConfidenceChecks.builtin()
        registry.add(CascadeStrategy.name, lambda: CascadeStrategy(cascade_checks))
        learned_routers = routers or LearnedRouters()
        registry.add(LearnedStrategy.name, lambda: LearnedStrategy(learned_routers))
        return registry

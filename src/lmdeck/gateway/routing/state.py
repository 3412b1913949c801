"""The live state of routes and their targets, shared by the router, the strategies and the dispatcher."""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Protocol

from lmdeck.providers import Provider
from lmdeck.settings import RouteConfig, TargetConfig

#: Weight of the newest sample in a target's latency average.
EWMA_ALPHA = 0.3


@dataclass
class TargetState:
    """One target of a route, with the provider instance that serves it and its live load."""

    config: TargetConfig
    provider: Provider
    in_flight: int = 0
    latency_ewma_ms: float | None = None

    @property
    def id(self) -> str:
        return self.config.id

    def observe_latency(self, ms: float) -> None:
        previous = self.latency_ewma_ms
        self.latency_ewma_ms = ms if previous is None else EWMA_ALPHA * ms + (1 - EWMA_ALPHA) * previous


class Strategy(Protocol):
    """Orders a route's targets for one request (see :mod:`lmdeck.gateway.routing.strategy`)."""

    name: str

    def order(self, targets: Sequence[TargetState], rng: random.Random) -> list[TargetState]:
        """All the targets, the preferred one first."""
        ...


@dataclass
class RouteState:
    """A route: its configuration, its targets and the strategy that orders them."""

    config: RouteConfig
    targets: list[TargetState] = field(default_factory=list)
    strategy: Strategy | None = None

    @property
    def name(self) -> str:
        return self.config.name

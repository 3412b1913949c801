"""``latency``: the target with the lowest recent latency first."""

from __future__ import annotations

import random
from collections.abc import Sequence

from lmdeck.gateway.routing.state import TargetState


class LatencyEWMA:
    """Lowest exponentially weighted latency first (time to first token for streams).

    A target with no sample yet goes first so that it gets measured; a small share
    of requests (``explore``) take a random order so a target that was slow once is
    measured again. Weight 0 targets are spares.
    """

    name = "latency"

    def __init__(self, explore: float = 0.05) -> None:
        self.explore = explore

    def order(self, targets: Sequence[TargetState], rng: random.Random) -> list[TargetState]:
        if rng.random() < self.explore:
            shuffled = list(targets)
            rng.shuffle(shuffled)
            return sorted(shuffled, key=lambda t: t.config.weight <= 0)

        def key(t: TargetState) -> tuple[bool, float, float]:
            latency = -1.0 if t.latency_ewma_ms is None else t.latency_ewma_ms
            return (t.config.weight <= 0, latency, rng.random())

        return sorted(targets, key=key)

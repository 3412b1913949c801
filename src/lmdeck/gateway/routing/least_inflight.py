"""``least-inflight``: the target with the fewest requests in progress first."""

from __future__ import annotations

import random
from collections.abc import Sequence

from lmdeck.gateway.routing.state import TargetState


class LeastInFlight:
    """Fewest in-flight requests first; ties are broken at random so load spreads.

    Weight 0 targets are spares, tried only after the others.
    """

    name = "least-inflight"

    def order(self, targets: Sequence[TargetState], rng: random.Random) -> list[TargetState]:
        return sorted(targets, key=lambda t: (t.config.weight <= 0, t.in_flight, rng.random()))

"""``weighted``: targets drawn at random in proportion to their ``weight``."""

from __future__ import annotations

import random
from collections.abc import Sequence

from lmdeck.gateway.routing.state import TargetState


class WeightedRandom:
    """A weighted random order (sampling without replacement); weight 0 means "only as a spare".

    >>> t = WeightedRandom().order(targets, random.Random(1))  # doctest: +SKIP
    """

    name = "weighted"

    def order(self, targets: Sequence[TargetState], rng: random.Random) -> list[TargetState]:
        # Efraimidis-Spirakis: sort by u ** (1 / w), which draws without replacement in proportion to w.
        weighted = [t for t in targets if t.config.weight > 0]
        spares = [t for t in targets if t.config.weight <= 0]
        keyed = sorted(weighted, key=lambda t: rng.random() ** (1.0 / t.config.weight), reverse=True)
        return keyed + spares

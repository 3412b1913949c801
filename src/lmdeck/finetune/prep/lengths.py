"""Token-length statistics of a set of examples, as the data card reports them."""

from __future__ import annotations

from collections.abc import Sequence

from lmdeck.protocol.training import LengthStats


def _rank(ordered: Sequence[int], q: float) -> int:
    """The nearest-rank ``q`` quantile of sorted values."""
    position = max(1, -(-round(q * 1000) * len(ordered) // 1000))
    return ordered[min(len(ordered), position) - 1]


def length_stats(lengths: Sequence[int]) -> LengthStats | None:
    """Count, min, mean, median, 95th percentile and max of ``lengths`` (tokens); None when empty."""
    if not lengths:
        return None
    ordered = sorted(lengths)
    return LengthStats(
        count=len(ordered),
        min=ordered[0],
        mean=round(sum(ordered) / len(ordered), 2),
        p50=_rank(ordered, 0.5),
        p95=_rank(ordered, 0.95),
        max=ordered[-1],
    )

"""Latency sketches: quantiles within the stated relative error of exact ones, merges equal to one sketch."""

from __future__ import annotations

import math
import random

import pytest

from lmdeck.tracing.sketch import RELATIVE_ACCURACY, Sketch

QUANTILES = (0.0, 0.01, 0.25, 0.5, 0.9, 0.95, 0.99, 0.999, 1.0)


def exact(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[math.floor(q * (len(ordered) - 1))]


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_quantiles_are_within_the_relative_error_of_exact_ones(seed: int) -> None:
    rng = random.Random(seed)
    values = [rng.lognormvariate(4.0, 1.2) for _ in range(20_000)] + [0.0] * 50
    sketch = Sketch.of(values)
    for q in QUANTILES:
        got, want = sketch.quantile(q), exact(values, q)
        assert got is not None
        assert abs(got - want) <= RELATIVE_ACCURACY * want + 1e-12, (q, got, want)


def test_merged_sketches_equal_one_sketch_of_everything_and_survive_storage() -> None:
    rng = random.Random(9)
    parts = [[rng.expovariate(1 / 300) for _ in range(rng.randrange(1, 400))] for _ in range(40)]
    merged = Sketch()
    for part in parts:
        merged.merge(Sketch.loads(Sketch.of(part).dumps()))
    whole = Sketch.of(v for part in parts for v in part)
    assert merged.bins == whole.bins and merged.count == whole.count == sum(map(len, parts))
    assert [merged.quantile(q) for q in QUANTILES] == [whole.quantile(q) for q in QUANTILES]


def test_empty_and_bad_quantiles() -> None:
    assert Sketch().quantile(0.5) is None
    assert Sketch.loads(None).count == 0
    with pytest.raises(ValueError, match="between 0 and 1"):
        Sketch.of([1.0]).quantile(1.5)

"""Sticky, weighted variant assignment."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from lmdeck.evaluation.experiments.assignment import assign, unit_point
from lmdeck.protocol.evaluation import ExperimentSpec, VariantSpec

VARIANTS = [VariantSpec(name="a", weight=70), VariantSpec(name="b", weight=20), VariantSpec(name="c", weight=10)]


def test_the_same_user_always_lands_on_the_same_variant() -> None:
    for i in range(500):
        first = assign("exp", f"user:{i}", VARIANTS).name
        assert all(assign("exp", f"user:{i}", VARIANTS).name == first for _ in range(5))


def test_observed_split_follows_the_weights_over_10k_users() -> None:
    n = 10_000
    counts = {"a": 0, "b": 0, "c": 0}
    for i in range(n):
        counts[assign("exp", f"user:{i}", VARIANTS).name] += 1
    for name, weight in (("a", 0.7), ("b", 0.2), ("c", 0.1)):
        # 4 standard deviations of a binomial share at n = 10k: at most 0.0183 (for p = 0.5).
        tolerance = 4 * (weight * (1 - weight) / n) ** 0.5
        assert abs(counts[name] / n - weight) < tolerance, counts


def test_experiments_shuffle_users_independently() -> None:
    same = sum(
        assign("exp-1", f"user:{i}", VARIANTS[:2]).name == assign("exp-2", f"user:{i}", VARIANTS[:2]).name
        for i in range(2000)
    )
    # Independent 70/30 splits agree with probability 0.7² + 0.3² = 0.58 (about 1160 of 2000 users).
    assert 1000 < same < 1320


def test_unit_points_are_uniform_in_0_1() -> None:
    points = [unit_point("e", str(i)) for i in range(5000)]
    assert min(points) >= 0.0 and max(points) < 1.0
    assert abs(sum(points) / len(points) - 0.5) < 0.02


@pytest.mark.parametrize(
    ("spec", "fragment"),
    [
        ({"name": "x", "variants": [{"name": "a", "weight": 1}, {"name": "b", "weight": 1}]}, "exactly one"),
        ({"name": "x", "route": "r", "variants": [{"name": "a", "weight": 1}]}, "at least 2"),
        ({"name": "x", "route": "r", "variants": [{"name": "a", "weight": 1}, {"name": "a", "weight": 1}]}, "unique"),
        ({"name": "x", "route": "r", "variants": [{"name": "a", "weight": 0}, {"name": "b", "weight": 1}]}, "greater"),
        (
            {
                "name": "x",
                "route": "r",
                "variants": [{"name": "a", "weight": 1}, {"name": "b", "weight": 1, "prompt_version": 2}],
            },
            "need an experiment on a `prompt`",
        ),
        (
            {
                "name": "x",
                "route": "r",
                "metric": "vibes",
                "variants": [{"name": "a", "weight": 1}, {"name": "b", "weight": 1}],
            },
            "metric must be",
        ),
        (
            {
                "name": "x",
                "route": "r",
                "variants": [{"name": "a", "weight": 1}, {"name": "b", "weight": 1, "model": "bot"}],
            },
            "name@3",
        ),
    ],
)
def test_bad_experiments_are_refused(spec: dict[str, object], fragment: str) -> None:
    with pytest.raises(ValidationError, match=fragment):
        ExperimentSpec.model_validate(spec)

from __future__ import annotations

from collections import Counter

import pytest

from lmdeck.finetune.prep.split import stratified_split, validation_size


def test_every_stratum_with_two_rows_is_in_validation_and_proportions_hold() -> None:
    strata = ["count"] * 50 + ["add"] * 30 + ["capital"] * 2 + ["rare"] * 1 + [None] * 10
    items = list(range(len(strata)))
    train, validation = stratified_split(items, strata, fraction=0.1, seed=7)
    assert sorted(train + validation) == items and not set(train) & set(validation)
    held = Counter(strata[i] for i in validation)
    assert held == {"count": 5, "add": 3, "capital": 1, None: 1}  # "rare" has one row: it trains
    assert "rare" not in held and strata.index("rare") in train
    assert train == sorted(train) and validation == sorted(validation)  # input order kept on each side


def test_seeded_and_stable() -> None:
    strata = ["a", "b"] * 40
    items = [f"row-{i}" for i in range(80)]
    first = stratified_split(items, strata, fraction=0.25, seed=3)
    assert stratified_split(items, strata, fraction=0.25, seed=3) == first
    assert stratified_split(items, strata, fraction=0.25, seed=4) != first
    # more rows of one stratum leave the other stratum's split as it was
    grown = stratified_split([*items, "extra-a"], [*strata, "a"], fraction=0.25, seed=3)
    assert [v for v in grown[1] if strata[items.index(v)] == "b"] == [
        v for v in first[1] if strata[items.index(v)] == "b"
    ]


def test_sizes_and_bad_arguments() -> None:
    assert [validation_size(n, 0.1) for n in (0, 1, 2, 5, 10, 26)] == [0, 0, 1, 1, 1, 3]
    assert validation_size(10, 0.0) == 0 and validation_size(2, 0.5) == 1 and validation_size(3, 0.9) == 2
    assert stratified_split(["x", "y"], ["s", "s"], fraction=0.0, seed=0) == (["x", "y"], [])
    with pytest.raises(ValueError, match="strata"):
        stratified_split([1, 2], ["a"], fraction=0.1, seed=0)
    with pytest.raises(ValueError, match="fraction"):
        stratified_split([1], ["a"], fraction=1.0, seed=0)

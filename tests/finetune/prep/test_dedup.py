from __future__ import annotations

import random
import string

import pytest

from lmdeck.finetune.prep.dedup import Deduplicator, jaccard, shingles


def test_exact_duplicates_ignore_case_and_whitespace() -> None:
    dedupe = Deduplicator(near_threshold=1.0)
    assert dedupe.check("How many r's in 'carrot'?\n2") is None
    assert dedupe.check("how many  R's in 'carrot'? 2") == "exact_duplicate"
    assert dedupe.check("How many r's in 'carrots'?\n2") is None  # near-duplicates are kept at 1.0


def test_near_duplicates_above_the_threshold_only() -> None:
    base = "Summarize the support ticket: my order 1182 arrived broken and I would like a refund please."
    near = base.replace("1182", "1183")
    other = "Translate to French: the weather is lovely today and we are going to the beach."
    assert jaccard(shingles(base), shingles(near)) >= 0.9 > jaccard(shingles(base), shingles(other))
    dedupe = Deduplicator(near_threshold=0.9)
    assert dedupe.check(base) is None
    assert dedupe.check(near) == "near_duplicate"
    assert dedupe.check(other) is None
    assert dedupe.check(other.upper()) == "exact_duplicate"
    # a looser threshold catches a rewrite with more changes; a strict one keeps it
    rewrite = base.replace("arrived broken", "came damaged")
    similarity = jaccard(shingles(base), shingles(rewrite))
    assert 0.5 < similarity < 0.9
    loose, strict = Deduplicator(near_threshold=0.5), Deduplicator(near_threshold=0.95)
    assert loose.check(base) is None and loose.check(rewrite) == "near_duplicate"
    assert strict.check(base) is None and strict.check(rewrite) is None


def test_many_rows_find_each_planted_near_duplicate() -> None:
    rng = random.Random(5)
    texts = [" ".join("".join(rng.choices(string.ascii_lowercase, k=6)) for _ in range(12)) for _ in range(300)]
    dedupe = Deduplicator(near_threshold=0.8)
    assert all(dedupe.check(t) is None for t in texts)
    planted = [t + " ok" for t in texts[::30]]
    assert [dedupe.check(t) for t in planted] == ["near_duplicate"] * len(planted)


def test_bad_threshold() -> None:
    with pytest.raises(ValueError, match="near_threshold"):
        Deduplicator(near_threshold=0.0)

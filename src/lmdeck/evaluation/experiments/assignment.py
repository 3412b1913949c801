"""Sticky assignment: the same subject always lands on the same variant.

The subject (a user or conversation id) is hashed with the experiment's name into a
point in [0, 1), and the variants' weights cut [0, 1) into consecutive intervals; no
state is kept, so every gateway process agrees::

    >>> variants = [VariantSpec(name="a", weight=1), VariantSpec(name="b", weight=3)]
    >>> assign("exp", "user-42", variants).name == assign("exp", "user-42", variants).name
    True
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence

from lmdeck.protocol.evaluation import VariantSpec


def unit_point(experiment: str, subject: str) -> float:
    digest = hashlib.sha256(f"{experiment}\x00{subject}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64


def assign(experiment: str, subject: str, variants: Sequence[VariantSpec]) -> VariantSpec:
    """The variant ``subject`` belongs to in ``experiment``."""
    total = sum(v.weight for v in variants)
    point = unit_point(experiment, subject) * total
    edge = 0.0
    for variant in variants:
        edge += variant.weight
        if point < edge:
            return variant
    return variants[-1]

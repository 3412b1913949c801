"""A seeded, stratified train/validation split.

Rows are grouped by stratum (a metadata value such as a skill or tag; rows without one form
their own group), each group is shuffled with a generator seeded by ``seed`` and the group's
name, and ``round(n * fraction)`` of its rows go to validation, at least one when the group has
two rows or more (and at least one always stays for training), so every stratum that can be is
represented on both sides. The same rows, fraction and seed always give the same split::

    train, validation = stratified_split(items, strata, fraction=0.2, seed=0)
"""

from __future__ import annotations

import hashlib
import random
from collections.abc import Sequence
from typing import TypeVar

T = TypeVar("T")


def validation_size(n: int, fraction: float) -> int:
    """How many of a stratum's ``n`` rows go to validation."""
    if fraction <= 0.0 or n < 2:
        return 0
    return min(n - 1, max(1, round(n * fraction)))


def _rng(seed: int, stratum: str | None) -> random.Random:
    # One generator per stratum: adding rows of one stratum leaves the others' split unchanged.
    label = "\0" if stratum is None else f"s:{stratum}"
    return random.Random(int.from_bytes(hashlib.sha256(f"{seed}\n{label}".encode()).digest()[:8], "big"))


def stratified_split(
    items: Sequence[T], strata: Sequence[str | None], *, fraction: float, seed: int
) -> tuple[list[T], list[T]]:
    """(train, validation): ``items`` split per stratum (``strata[i]`` is ``items[i]``'s), each in input order.

    Raises ValueError when ``strata`` and ``items`` differ in length or ``fraction`` is outside [0, 1).
    """
    if len(items) != len(strata):
        raise ValueError(f"{len(items)} items but {len(strata)} strata")
    if not 0.0 <= fraction < 1.0:
        raise ValueError(f"fraction must be in [0, 1), got {fraction!r}")
    groups: dict[str | None, list[int]] = {}
    for index, stratum in enumerate(strata):
        groups.setdefault(stratum, []).append(index)
    held: set[int] = set()
    for stratum, indices in groups.items():
        shuffled = list(indices)
        _rng(seed, stratum).shuffle(shuffled)
        held.update(shuffled[: validation_size(len(indices), fraction)])
    train = [item for i, item in enumerate(items) if i not in held]
    validation = [item for i, item in enumerate(items) if i in held]
    return train, validation

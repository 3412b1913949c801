"""The start-up heap is frozen once and stays out of later collections."""

from __future__ import annotations

import gc
from collections.abc import Iterator

import pytest

from lmdeck.app.heap import freeze_startup_heap


@pytest.fixture
def unfrozen() -> Iterator[None]:
    gc.unfreeze()
    try:
        yield
    finally:
        # Give the test process its collector back as it was.
        gc.unfreeze()


def test_freeze_moves_survivors_to_the_permanent_generation(unfrozen: None) -> None:
    kept = [[n] for n in range(1000)]  # lists: objects the collector tracks
    # Frozen objects freed since (by other threads of a test run) leave the count: at least, not equal.
    assert freeze_startup_heap() >= len(kept)
    tracked = {id(obj) for obj in gc.get_objects()}
    assert not any(id(obj) in tracked for obj in kept)


def test_a_frozen_heap_still_collects_what_serving_creates(unfrozen: None) -> None:
    freeze_startup_heap()

    class Cycle:
        other: object = None

    a, b = Cycle(), Cycle()
    a.other, b.other = b, a
    del a, b
    assert gc.collect() >= 2

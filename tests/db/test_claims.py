"""Work claims on each store: claim, renew, expire, release, adopt; two owners racing, one wins."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from lmdeck.db import Database
from lmdeck.db.claims import WorkClaims


class Clock:
    """A fake clock: epoch seconds that move only when the test says so."""

    def __init__(self, now: float = 1_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


def owners(db: Database, clock: Clock, ttl_s: float = 30.0) -> tuple[WorkClaims, WorkClaims]:
    return WorkClaims(db, ttl_s=ttl_s, owner="a", clock=clock), WorkClaims(db, ttl_s=ttl_s, owner="b", clock=clock)


def test_a_live_claim_is_refused_to_another_owner_and_renewed_for_its_own(database: Database, clock: Clock) -> None:
    a, b = owners(database, clock)
    assert a.claim("batch", "x")
    assert not b.claim("batch", "x")
    assert a.claim("batch", "x")  # already ours: renewed
    assert b.claim("batch", "y")  # another id, or another kind, is another claim
    assert b.claim("job", "x")
    assert a.holder("batch", "x") == "a" and a.holder("batch", "y") == "b" and a.holder("batch", "z") is None


def test_renewal_keeps_a_claim_past_its_first_expiry(database: Database, clock: Clock) -> None:
    a, b = owners(database, clock)
    assert a.claim("batch", "x")
    clock.now += 20
    assert a.renew("batch", ["x"]) == set()
    clock.now += 20  # 40 s after the claim, 20 s after the renewal
    assert not b.claim("batch", "x")
    assert a.holder("batch", "x") == "a"


def test_an_expired_claim_is_adopted_and_lost_by_its_old_owner(database: Database, clock: Clock) -> None:
    a, b = owners(database, clock)
    assert a.claim("batch", "x") and a.claim("batch", "y")
    clock.now += 30.5
    assert a.holder("batch", "x") is None
    assert b.claim("batch", "x")
    assert a.renew("batch", ["x", "y"]) == {"x"}  # y was expired but nobody took it: still ours
    assert not a.claim("batch", "x")
    assert b.holder("batch", "x") == "b" and b.holder("batch", "y") == "a"


def test_release_frees_the_claim_at_once_and_only_the_owners(database: Database, clock: Clock) -> None:
    a, b = owners(database, clock)
    assert a.claim("batch", "x")
    b.release("batch", "x")  # not b's: nothing happens
    assert a.holder("batch", "x") == "a"
    a.release("batch", "x")
    assert a.holder("batch", "x") is None
    assert a.renew("batch", ["x"]) == {"x"}
    assert b.claim("batch", "x")


def test_a_ttl_that_is_not_positive_is_refused(database: Database) -> None:
    with pytest.raises(ValueError, match="positive"):
        WorkClaims(database, ttl_s=0)


@pytest.fixture
def shared_store(database: Database, tmp_path: Path) -> Iterator[tuple[Database, Database]]:
    """Two engines on one store, as two processes have: a file for SQLite, the same database for PostgreSQL."""
    url = f"sqlite:///{tmp_path}/store.db" if database.is_sqlite else database.url
    first, second = Database(url), Database(url)
    first.migrate()
    try:
        yield first, second
    finally:
        first.dispose()
        second.dispose()


@pytest.mark.parametrize("expired", [False, True], ids=["unclaimed", "expired"])
def test_two_owners_racing_for_each_piece_of_work_exactly_one_wins(
    shared_store: tuple[Database, Database], clock: Clock, expired: bool
) -> None:
    first, second = shared_store
    ids = [f"w{i}" for i in range(40)]
    if expired:
        old = WorkClaims(first, ttl_s=1.0, owner="dead", clock=clock)
        assert all(old.claim("batch", i) for i in ids)
        clock.now += 5
    racers = [WorkClaims(first, owner="a", clock=clock), WorkClaims(second, owner="b", clock=clock)]
    wins: dict[str, list[str]] = {i: [] for i in ids}
    start = threading.Barrier(2)

    def race(claims: WorkClaims) -> None:
        for work_id in ids:
            start.wait(timeout=60)
            if claims.claim("batch", work_id):
                wins[work_id].append(claims.owner)

    threads = [threading.Thread(target=race, args=(r,)) for r in racers]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert all(len(w) == 1 for w in wins.values()), wins
    assert all(racers[0].holder("batch", i) == wins[i][0] for i in ids)

"""Files and batches belong to a key's team, or to the key alone when it has none."""

from __future__ import annotations

from lmdeck.gateway.batches.ownership import owns


def test_a_team_shares_its_rows() -> None:
    assert owns("t1", "k1", "t1", "k2")
    assert not owns("t1", "k1", "t2", "k1")


def test_keys_without_a_team_share_nothing() -> None:
    assert owns(None, "k1", None, "k1")
    assert not owns(None, "k1", None, "k2")
    assert not owns("t1", "k1", None, "k1")
    assert not owns(None, None, None, None)

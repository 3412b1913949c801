"""The flag store: versions, the history of every change (deletions included), conditional writes, revision."""

from __future__ import annotations

from pathlib import Path

import pytest

from lmdeck.db import Database
from lmdeck.delivery.flags.live import load_snapshot
from lmdeck.delivery.flags.store import FlagStore, VersionConflict
from lmdeck.protocol.flags import FlagSpec


@pytest.fixture
def store(tmp_path: Path) -> FlagStore:
    db = Database(f"sqlite:///{tmp_path / 'flags.db'}")
    db.migrate()
    return FlagStore(db)


def test_every_change_is_a_version_in_the_history(store: FlagStore) -> None:
    assert store.revision() == 0
    before, after = store.put(FlagSpec(name="f"), "key:a")
    assert before is None and after.version == 1 and after.created_by == "key:a"
    _, after = store.put(FlagSpec(name="f", enabled=False), "key:b", action="disabled")
    assert after.version == 2 and after.updated_by == "key:b" and after.created_by == "key:a"
    assert store.delete("f", "key:c") is not None and store.get("f") is None
    _, again = store.put(FlagSpec(name="f", routes=["r"]), "key:d")
    assert again.version == 4  # versions continue across a deletion
    history = store.history("f")
    assert [(h.version, h.action, h.actor) for h in history] == [
        (4, "created", "key:d"),
        (3, "deleted", "key:c"),
        (2, "disabled", "key:b"),
        (1, "created", "key:a"),
    ]
    assert history[1].spec is None and history[2].spec is not None and history[2].spec.enabled is False
    assert store.revision() == 4


def test_conditional_writes_refuse_a_stale_version(store: FlagStore) -> None:
    store.put(FlagSpec(name="f"), "a", expected_version=0)
    with pytest.raises(VersionConflict) as err:
        store.put(FlagSpec(name="f"), "a", expected_version=0)
    assert err.value.current == 1
    store.put(FlagSpec(name="f", enabled=False), "a", expected_version=1)
    with pytest.raises(VersionConflict):
        store.delete("f", "a", expected_version=1)


def test_the_snapshot_indexes_kill_switches_by_route(store: FlagStore) -> None:
    store.put(FlagSpec(name="kill.a", kill_switch=True, routes=["a", "b"]), "x")
    store.put(FlagSpec(name="other", routes=["a"]), "x")
    snapshot = load_snapshot(store)
    assert [s.name for s in snapshot.kill_switches("a")] == ["kill.a"]
    assert [s.name for s in snapshot.kill_switches("b")] == ["kill.a"] and snapshot.kill_switches("c") == ()
    assert snapshot.revision == 2 and set(snapshot.flags) == {"kill.a", "other"}

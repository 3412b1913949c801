from __future__ import annotations

import pytest

from lmdeck.db import Database
from lmdeck.protocol import APIError
from lmdeck.protocol.registry import ModelVersionSpec
from lmdeck.registry.labels import LabelStore
from lmdeck.registry.snapshot import load_snapshot
from lmdeck.registry.versions import VersionStore


def stores(db: Database) -> tuple[VersionStore[ModelVersionSpec], LabelStore]:
    versions: VersionStore[ModelVersionSpec] = VersionStore(db, "model")
    return versions, LabelStore(db, {"model": versions})


def test_versions_are_numbered_and_immutable(db: Database) -> None:
    versions, _ = stores(db)
    v1 = versions.create("bot", ModelVersionSpec(model="m-1", metrics={"acc": 0.8}), actor="key:a")
    v2 = versions.create("bot", ModelVersionSpec(model="m-2", lineage={"parent_version": 1}), actor="key:a")
    assert (v1.version, v2.version) == (1, 2)
    assert versions.get("bot", 1).spec.metrics == {"acc": 0.8}
    assert versions.get("bot", 2).spec.lineage.parent_version == 1
    with pytest.raises(APIError) as info:
        versions.create("bot", ModelVersionSpec(version=1, model="rewrite"), actor="key:a")
    assert info.value.status == 409 and "immutable" in info.value.message
    with pytest.raises(APIError) as gap:
        versions.create("bot", ModelVersionSpec(version=9, model="m"), actor="key:a")
    assert gap.value.status == 400 and "next is 3" in gap.value.message
    assert versions.get("bot", 1).spec.model == "m-1"


def test_secret_references_are_stored_not_secrets(db: Database) -> None:
    versions, _ = stores(db)
    v = versions.create("bot", ModelVersionSpec.model_validate({"model": "m", "api_key": {"$env": "K"}}), actor=None)
    assert v.to_dict()["api_key"]["$env"] == "K"
    assert versions.get("bot", 1).spec.api_key is not None


def test_moves_are_recorded_and_rollback_walks_back(db: Database) -> None:
    versions, labels = stores(db)
    for n in range(3):
        versions.create("bot", ModelVersionSpec(model=f"m-{n + 1}"), actor=None)
    assert labels.move("model", "bot", "production", 1, actor="key:a", reason="first") is not None
    assert labels.move("model", "bot", "production", 1, actor="key:a", reason="again") is None  # no-op
    labels.move("model", "bot", "production", 2, actor="key:b", reason="v2 better")
    labels.move("model", "bot", "production", 3, actor="key:b", reason="v3 better")
    back = labels.rollback("model", "bot", "production", actor="key:c", reason="errors")
    assert (back.from_version, back.to_version, back.action) == (3, 2, "rollback")
    back = labels.rollback("model", "bot", "production", actor="key:c", reason="still errors")
    assert (back.from_version, back.to_version) == (2, 1)
    with pytest.raises(APIError) as info:
        labels.rollback("model", "bot", "production", actor="key:c", reason=None)
    assert info.value.status == 409
    history = labels.history("model", "bot", "production")
    assert [(m.from_version, m.to_version) for m in history] == [(2, 1), (3, 2), (2, 3), (1, 2), (None, 1)]
    assert history[-1].actor == "key:a" and history[-1].reason == "first"


def test_pointer_must_name_an_existing_version_and_a_valid_label(db: Database) -> None:
    versions, labels = stores(db)
    versions.create("bot", ModelVersionSpec(model="m"), actor=None)
    with pytest.raises(APIError) as missing:
        labels.move("model", "bot", "production", 5, actor=None, reason=None)
    assert missing.value.status == 404
    for bad in ("12", "latest", "has space"):
        with pytest.raises(APIError) as invalid:
            labels.move("model", "bot", bad, 1, actor=None, reason=None)
        assert invalid.value.status == 400


def test_snapshot_resolves_aliases_versions_and_latest(db: Database) -> None:
    versions, labels = stores(db)
    versions.create("bot", ModelVersionSpec(model="m-1"), actor=None)
    versions.create("bot", ModelVersionSpec(model="m-2"), actor=None)
    labels.move("model", "bot", "staging", 1, actor=None, reason=None)
    snap = load_snapshot(db)
    assert snap.model("bot@staging").spec.model == "m-1"
    assert snap.model("bot@2").spec.model == "m-2"
    assert snap.model("bot@latest").version == 2
    with pytest.raises(APIError, match="lmdeck models alias bot production"):
        snap.model("bot@production")
    with pytest.raises(APIError, match="register it"):
        snap.model("nobody@production")
    with pytest.raises(ValueError, match="needs an alias or a version"):
        snap.model("bot")
    before = snap.revision
    labels.move("model", "bot", "staging", 2, actor=None, reason=None)
    later = load_snapshot(db, snap)
    assert later.revision > before and later.model("bot@staging").version == 2

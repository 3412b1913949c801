"""The admin key: generated and printed once at first start, or taken from LMDECK_ADMIN_KEY."""

from __future__ import annotations

from pathlib import Path

import pytest

from lmdeck.db import Database
from lmdeck.policy.bootstrap import ADMIN_KEY_ID, LEGACY_HASH_FILE, bootstrap_admin_key
from lmdeck.policy.identity_store import IdentityStore
from lmdeck.policy.key_cache import KeyCache
from lmdeck.policy.keys import hash_key
from lmdeck.settings import Settings


def fresh(tmp_path: Path) -> IdentityStore:
    db = Database(f"sqlite:///{tmp_path / 'store.db'}")
    db.migrate()
    return IdentityStore(db)


def accepts(store: IdentityStore, key: str) -> bool:
    cache = KeyCache(store)
    cache.load()
    principal = cache.lookup(key)
    return principal is not None and principal.role == "admin"


def test_first_start_prints_a_key_once_and_stores_only_its_hash(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    store = fresh(tmp_path)
    settings = Settings.model_validate({"data_dir": str(tmp_path)})
    assert bootstrap_admin_key(store, settings) == ADMIN_KEY_ID
    printed = capsys.readouterr().err
    key = next(word for word in printed.split() if word.startswith("sk-lmdeck-"))
    assert accepts(store, key)
    assert key.encode() not in (tmp_path / "store.db").read_bytes()
    bootstrap_admin_key(store, settings)
    assert capsys.readouterr().err == ""  # shown once
    assert accepts(store, key)


def test_the_environment_key_is_used_and_followed(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    store = fresh(tmp_path)
    settings = Settings.model_validate({"data_dir": str(tmp_path), "admin_key": {"$env": "ADMIN_FOR_TEST"}})
    monkeypatch.setenv("ADMIN_FOR_TEST", "sk-lmdeck-first-Ab3Xk9Qm2Wz7Lt5Rc8Nv1Hp4Jg6Ds0F")
    bootstrap_admin_key(store, settings)
    assert accepts(store, "sk-lmdeck-first-Ab3Xk9Qm2Wz7Lt5Rc8Nv1Hp4Jg6Ds0F")
    monkeypatch.setenv("ADMIN_FOR_TEST", "sk-lmdeck-second-Yq5Fm8Kx2Rb7Wn3Tc9Lz4Hv1Jd6Gs0P")
    bootstrap_admin_key(store, settings)
    assert accepts(store, "sk-lmdeck-second-Yq5Fm8Kx2Rb7Wn3Tc9Lz4Hv1Jd6Gs0P")
    assert not accepts(store, "sk-lmdeck-first-Ab3Xk9Qm2Wz7Lt5Rc8Nv1Hp4Jg6Ds0F")


def test_an_earlier_hash_file_is_adopted(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / LEGACY_HASH_FILE).write_text(hash_key("sk-lmdeck-from-an-earlier-version-0000"))
    store = fresh(tmp_path)
    bootstrap_admin_key(store, Settings.model_validate({"data_dir": str(tmp_path)}))
    assert accepts(store, "sk-lmdeck-from-an-earlier-version-0000")
    assert capsys.readouterr().err == ""

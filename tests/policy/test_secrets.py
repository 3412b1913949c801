"""Provider secrets encrypted at rest, and no key or secret in plaintext anywhere it could leak."""

from __future__ import annotations

import logging
import os
import stat
from pathlib import Path

import orjson
import pytest
from cryptography.fernet import Fernet

from lmdeck.db import Database
from lmdeck.policy.secrets import MASTER_KEY_FILE, SecretBox, SecretStore
from lmdeck.settings import ConfigError, Settings
from policy.deck import ADMIN_KEY, auth, fake_route, policy_settings, started_deck

UPSTREAM_SECRET = "sk-upstream-provider-secret-7f3a9c"


def store_at(tmp_path: Path, **settings: object) -> SecretStore:
    db = Database(f"sqlite:///{tmp_path / 'store.db'}")
    db.migrate()
    return SecretStore(db, SecretBox.from_settings(Settings.model_validate({"data_dir": str(tmp_path), **settings})))


def test_a_master_key_is_generated_once_with_owner_only_permissions(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING):
        store = store_at(tmp_path)
    path = tmp_path / MASTER_KEY_FILE
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    assert "generated a master key" in caplog.text
    store.put("openai-prod", UPSTREAM_SECRET)
    assert store_at(tmp_path).get("openai-prod") == UPSTREAM_SECRET  # the same key is read back


def test_secrets_are_encrypted_in_the_database(tmp_path: Path) -> None:
    store = store_at(tmp_path)
    store.put("openai-prod", UPSTREAM_SECRET)
    assert UPSTREAM_SECRET.encode() not in (tmp_path / "store.db").read_bytes()
    assert store.names()[0]["name"] == "openai-prod" and "value" not in store.names()[0]


def test_a_wrong_master_key_says_how_to_recover(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    store_at(tmp_path).put("openai-prod", UPSTREAM_SECRET)
    monkeypatch.setenv("OTHER_MASTER", Fernet.generate_key().decode())
    with pytest.raises(ConfigError, match="LMDECK_MASTER_KEY changed"):
        store_at(tmp_path, master_key={"$env": "OTHER_MASTER"}).get("openai-prod")
    monkeypatch.setenv("BAD_MASTER", "not-a-key")
    with pytest.raises(ConfigError, match="not a Fernet key"):
        store_at(tmp_path, master_key={"$env": "BAD_MASTER"})


async def test_a_target_resolves_a_stored_secret(tmp_path: Path) -> None:
    async with started_deck(policy_settings(tmp_path)) as deck:
        put = await deck.admin("PUT", "/api/secrets/openai-prod", json={"value": UPSTREAM_SECRET})
        assert put.status_code == 200 and UPSTREAM_SECRET not in put.text
    route = fake_route()
    route["targets"][0]["api_key"] = {"$secret": "openai-prod"}
    async with started_deck(policy_settings(tmp_path, routes=[route])) as deck:
        provider = deck.gateway.router.get("fake-gpt").targets[0].provider  # type: ignore[union-attr]
        assert provider.api_key == UPSTREAM_SECRET  # type: ignore[attr-defined]
        assert UPSTREAM_SECRET not in repr(deck.gateway.settings)


async def test_keys_and_secrets_never_appear_in_plaintext(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    seen_in_responses: list[str] = []
    with caplog.at_level(logging.DEBUG):
        async with started_deck(policy_settings(tmp_path)) as deck:
            created = await deck.new_key(name="leaky?", role="developer")
            key = created["key"]
            rotated = (await deck.admin("POST", f"/api/keys/{created['id']}/rotate")).json()["key"]
            await deck.admin("PUT", "/api/secrets/openai-prod", json={"value": UPSTREAM_SECRET})
            await deck.admin("PUT", "/api/secrets/openai-prod", json={"value": UPSTREAM_SECRET})
            for token in (key, rotated):
                assert (await deck.chat(token)).status_code == 200
                assert (await deck.chat(token, stream=True)).status_code == 200
            await deck.admin("POST", f"/api/keys/{created['id']}/revoke")
            assert (await deck.chat(key)).status_code == 401
            for path in ("/api/keys", f"/api/keys/{created['id']}", "/api/secrets", "/api/audit", "/api/spend"):
                seen_in_responses.append((await deck.admin("GET", path)).text)
            seen_in_responses.append((await deck.http.get("/v1/models", headers=auth(rotated))).text)
            traces = orjson.dumps([t.to_dict() for t in deck.sink.records]).decode()
    database = b"".join(p.read_bytes() for p in tmp_path.glob("lmdeck.db*"))
    for plaintext in (key, rotated, ADMIN_KEY, UPSTREAM_SECRET):
        assert plaintext.encode() not in database
        assert plaintext not in caplog.text
        assert plaintext not in traces
        assert all(plaintext not in text for text in seen_in_responses)

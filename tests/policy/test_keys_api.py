"""Keys through the admin API: shown once, hashed at rest, and rotation, expiry, revocation live at once."""

from __future__ import annotations

import time

from sqlalchemy import text

from policy.deck import ADMIN_KEY, Deck, auth


async def test_a_created_key_works_and_is_shown_only_once(deck: Deck) -> None:
    created = await deck.new_key(name="ci", role="developer")
    secret = created["key"]
    assert secret.startswith("sk-lmdeck-")
    assert secret.startswith(created["prefix"]) and len(created["prefix"]) < len(secret)
    assert created["state"] == "active"
    assert (await deck.chat(secret)).status_code == 200
    listed = (await deck.admin("GET", "/api/keys")).json()["data"]
    assert any(k["id"] == created["id"] for k in listed)
    assert secret not in (await deck.admin("GET", "/api/keys")).text
    assert secret not in (await deck.admin("GET", f"/api/keys/{created['id']}")).text
    with deck.gateway.db.engine.connect() as conn:
        hashes = [r[0] for r in conn.execute(text("SELECT hash FROM api_key_secrets"))]
    assert secret not in hashes and len(hashes) == 2


async def test_the_bootstrap_admin_key_is_a_row_of_the_keys_table(deck: Deck) -> None:
    listed = (await deck.admin("GET", "/api/keys")).json()["data"]
    assert [k["id"] for k in listed if k["role"] == "admin"] == ["key_admin"]


async def test_rotation_keeps_the_old_key_for_the_grace_period_only(deck: Deck) -> None:
    created = await deck.new_key(name="rotating", role="inference")
    old = created["key"]
    rotated = await deck.admin("POST", f"/api/keys/{created['id']}/rotate", json={"grace_seconds": 600})
    assert rotated.status_code == 200, rotated.text
    new = rotated.json()["key"]
    assert new != old and rotated.json()["id"] == created["id"]
    assert (await deck.chat(old)).status_code == 200
    assert (await deck.chat(new)).status_code == 200
    later = time.time() + 601
    deck.policy.keys.clock = lambda: later
    refused = await deck.chat(old)
    assert refused.status_code == 401
    assert refused.json()["error"]["code"] == "invalid_api_key"
    assert (await deck.chat(new)).status_code == 200


async def test_rotation_without_grace_retires_the_old_key_at_once(deck: Deck) -> None:
    created = await deck.new_key(name="now")
    rotated = await deck.admin("POST", f"/api/keys/{created['id']}/rotate", json={"grace_seconds": 0})
    assert (await deck.chat(created["key"])).status_code == 401
    assert (await deck.chat(rotated.json()["key"])).status_code == 200


async def test_revocation_takes_effect_on_the_next_request(deck: Deck) -> None:
    created = await deck.new_key(name="doomed", role="viewer")
    assert (await deck.chat(created["key"])).status_code == 200
    revoked = await deck.admin("POST", f"/api/keys/{created['id']}/revoke")
    assert revoked.json()["state"] == "revoked"
    assert (await deck.chat(created["key"])).status_code == 401
    assert (await deck.http.get("/api/budgets", headers=auth(created["key"]))).status_code == 401
    again = await deck.admin("POST", f"/api/keys/{created['id']}/rotate")
    assert again.status_code == 409
    twice = await deck.admin("POST", f"/api/keys/{created['id']}/revoke")
    assert twice.status_code == 200 and twice.json()["state"] == "revoked"
    entries = (await deck.admin("GET", "/api/audit", params={"action": "key.revoked"})).json()["data"]
    assert [e["target"] for e in entries] == [f"key:{created['id']}"]  # one entry, not two


async def test_not_found_messages_keep_their_quotes(deck: Deck) -> None:
    missing = await deck.admin("GET", "/api/keys/key_nope")
    assert missing.status_code == 404
    assert missing.json()["error"]["message"] == "no key 'key_nope'"


async def test_expiry_takes_effect_without_a_restart(deck: Deck) -> None:
    created = await deck.new_key(name="short", expires_in=60)
    assert (await deck.chat(created["key"])).status_code == 200
    later = time.time() + 61
    deck.policy.keys.clock = lambda: later
    assert (await deck.chat(created["key"])).status_code == 401
    past = await deck.admin("POST", "/api/keys", json={"name": "x", "expires_at": time.time() - 5})
    assert past.status_code == 400 and past.json()["error"]["param"] == "expires_at"


async def test_another_process_sees_a_revocation_at_its_next_refresh(deck: Deck) -> None:
    from lmdeck.policy.identity_store import IdentityStore
    from lmdeck.policy.key_cache import KeyCache

    created = await deck.new_key(name="shared")
    other = KeyCache(IdentityStore(deck.gateway.db))  # what a second gateway process holds
    other.load()
    assert other.lookup(created["key"]) is not None
    await deck.admin("POST", f"/api/keys/{created['id']}/revoke")
    assert other.lookup(created["key"]) is not None  # not yet refreshed
    await other.reload()
    assert other.lookup(created["key"]) is None


async def test_a_role_change_is_audited_and_applies_at_once(deck: Deck) -> None:
    created = await deck.new_key(name="promote", role="viewer")
    key = created["key"]
    assert (await deck.http.get("/api/keys", headers=auth(key))).status_code == 403
    changed = await deck.admin("PATCH", f"/api/keys/{created['id']}", json={"role": "admin"})
    assert changed.status_code == 200 and changed.json()["role"] == "admin"
    assert (await deck.http.get("/api/keys", headers=auth(key))).status_code == 200
    entries = (await deck.admin("GET", "/api/audit", params={"action": "key.role_changed"})).json()["data"]
    assert entries[-1]["before"]["role"] == "viewer" and entries[-1]["after"]["role"] == "admin"
    assert entries[-1]["actor"] == "key:key_admin"


async def test_bad_bodies_get_openai_shaped_400s(deck: Deck) -> None:
    for body in ({"name": ""}, {"name": "x", "role": "root"}, {"name": "x", "rpm": 0}, {"name": "x", "colour": 1}):
        response = await deck.admin("POST", "/api/keys", json=body)
        assert response.status_code == 400, body
        assert set(response.json()["error"]) == {"message", "type", "param", "code"}
    unknown_team = await deck.admin("POST", "/api/keys", json={"name": "x", "team_id": "team_nope"})
    assert unknown_team.status_code == 400 and "team_nope" in unknown_team.json()["error"]["message"]
    assert (await deck.admin("GET", "/api/keys/key_nope")).status_code == 404
    assert (await deck.admin("POST", "/api/keys/key_nope/revoke")).status_code == 404


async def test_the_admin_key_is_required(deck: Deck) -> None:
    assert (await deck.http.get("/api/keys")).status_code == 401
    assert (await deck.http.get("/api/keys", headers=auth(ADMIN_KEY + "x"))).status_code == 401

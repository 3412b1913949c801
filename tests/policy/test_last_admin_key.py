"""The last active admin key cannot be revoked, demoted or expired, also when two changes race."""

from __future__ import annotations

import asyncio
import os
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from lmdeck.db import Database
from lmdeck.db.scratch import scratch_database
from lmdeck.policy.identity_store import IdentityStore, LastAdminKey
from policy.deck import Deck


@pytest.fixture(params=["sqlite", "postgresql"])
def shared_store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[IdentityStore]:
    """A store that several connections reach at once (a file, not the single-connection in-memory one)."""
    if request.param == "sqlite":
        server = f"sqlite:///{tmp_path / 'keys.db'}"
        db = Database(server)
        db.migrate()
        yield IdentityStore(db)
        db.dispose()
        return
    server = os.environ.get("LMDECK_TEST_POSTGRES_URL")
    if not server:
        pytest.skip("set LMDECK_TEST_POSTGRES_URL (scripts/test-services.sh does) to test on PostgreSQL")
    with scratch_database(server) as url:
        db = Database(url)
        db.migrate()
        try:
            yield IdentityStore(db)
        finally:
            db.dispose()


def active_admins(store: IdentityStore) -> list[str]:
    now = time.time()
    return [k.id for k in store.keys(include_revoked=False) if k.role == "admin" and k.state(now) == "active"]


def revoke_together(store: IdentityStore, key_ids: list[str]) -> dict[str, str]:
    """Revoke each key in its own thread, all released at once; key id -> "revoked" or the refusal."""
    barrier = threading.Barrier(len(key_ids))
    outcomes: dict[str, str] = {}

    def revoke(key_id: str) -> None:
        barrier.wait()
        try:
            store.revoke_key(key_id)
            outcomes[key_id] = "revoked"
        except LastAdminKey as exc:
            outcomes[key_id] = str(exc)

    threads = [threading.Thread(target=revoke, args=(k,)) for k in key_ids]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    return outcomes


def test_two_concurrent_revocations_of_the_last_two_admin_keys_leave_one(shared_store: IdentityStore) -> None:
    for round_ in range(8):
        first, _ = shared_store.create_key(f"admin a{round_}", "admin")
        second, _ = shared_store.create_key(f"admin b{round_}", "admin")
        for key_id in active_admins(shared_store):
            if key_id not in (first.id, second.id):
                shared_store.revoke_key(key_id)
        assert sorted(active_admins(shared_store)) == sorted([first.id, second.id])
        outcomes = revoke_together(shared_store, [first.id, second.id])
        assert sorted(v == "revoked" for v in outcomes.values()) == [False, True], outcomes
        (survivor,) = active_admins(shared_store)
        assert "last active admin key" in outcomes[survivor]


def test_an_admin_key_without_an_expiry_stays(shared_store: IdentityStore) -> None:
    lasting, _ = shared_store.create_key("lasting admin", "admin")
    expiring, _ = shared_store.create_key("temporary admin", "admin", expires_at=time.time() + 3600)
    with pytest.raises(LastAdminKey, match="without an expiry"):
        shared_store.update_key(lasting.id, {"expires_at": time.time() + 60})
    with pytest.raises(LastAdminKey, match="without an expiry"):
        shared_store.revoke_key(lasting.id)
    shared_store.revoke_key(expiring.id)
    with pytest.raises(LastAdminKey, match="making it a developer key"):
        shared_store.update_key(lasting.id, {"role": "developer"})
    # A change that keeps an admin is allowed, and other keys are never held back.
    renamed = shared_store.update_key(lasting.id, {"name": "still admin"})
    assert renamed.name == "still admin" and renamed.role == "admin"
    other, _ = shared_store.create_key("ci", "developer")
    assert shared_store.revoke_key(other.id).revoked_at is not None


async def test_the_api_answers_409_naming_why(deck: Deck) -> None:
    admin_id = "key_admin"
    for method, path, body, why in (
        ("POST", f"/api/keys/{admin_id}/revoke", None, "revoking it"),
        ("PATCH", f"/api/keys/{admin_id}", {"role": "viewer"}, "making it a viewer key"),
        ("PATCH", f"/api/keys/{admin_id}", {"expires_at": time.time() - 1}, "giving it an expiry"),
    ):
        refused = await deck.admin(method, path, json=body)
        assert refused.status_code == 409, refused.text
        error = refused.json()["error"]
        assert error["code"] == "last_admin_key" and error["type"] == "conflict_error"
        assert "last active admin key" in error["message"] and why in error["message"]
    assert (await deck.admin("GET", "/api/keys")).status_code == 200


async def test_concurrent_revocations_through_the_api_leave_one_admin(deck: Deck) -> None:
    second = await deck.new_key(name="second admin", role="admin")
    first_try, second_try = await asyncio.gather(
        deck.admin("POST", "/api/keys/key_admin/revoke"),
        deck.admin("POST", f"/api/keys/{second['id']}/revoke"),
    )
    assert sorted([first_try.status_code, second_try.status_code]) == [200, 409]
    assert len(active_admins(deck.policy.identities)) == 1

"""The access-control tables on SQLite and PostgreSQL: identities, budgets, audit chain, secrets, spend."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from sqlalchemy import text
from sqlalchemy.exc import IntegrityError

from lmdeck.db import Database
from lmdeck.policy.audit import AuditLog
from lmdeck.policy.budgets import BudgetStore
from lmdeck.policy.identity_store import IdentityStore, NotFound
from lmdeck.policy.key_cache import KeyCache
from lmdeck.policy.secrets import SecretBox, SecretStore
from lmdeck.policy.spend import SpendReports
from lmdeck.protocol.traces import TraceRecord
from lmdeck.settings import Settings
from lmdeck.tracing.sql_store import SQLTraceStore


def test_identities(database: Database) -> None:
    store = IdentityStore(database)
    team = store.create_team("search", allowed_models=["a", "b"], rpm=10, metadata={"cost_center": "42"})
    with pytest.raises(IntegrityError):
        store.create_team("search")
    assert store.team("search") == team and team.allowed_models == frozenset({"a", "b"})
    user = store.create_user("Ada", email="ada@example.com", team_id=team.id)
    key, secret = store.create_key("ci", "developer", team_id=team.id, user_id=user.id, allowed_tags=["x"])
    assert store.key(key.id).prefix == secret[:16]
    changed = store.update_key(key.id, {"role": "viewer", "allowed_models": ["a"], "tpm": 100})
    assert (changed.role, changed.allowed_models, changed.tpm) == ("viewer", frozenset({"a"}), 100)
    now = time.time()
    _, new_secret = store.rotate_key(key.id, grace_seconds=60, now=now)
    cache = KeyCache(store, clock=lambda: now + 30)
    cache.load()
    assert cache.lookup(secret) is not None and cache.lookup(new_secret) is not None
    cache.clock = lambda: now + 61
    assert cache.lookup(secret) is None and cache.lookup(new_secret) is not None
    store.revoke_key(key.id, now=now + 62)
    cache.load()
    cache.clock = lambda: now + 63
    assert cache.lookup(new_secret) is None
    assert [k.id for k in store.keys(team_id=team.id, include_revoked=False)] == []
    with pytest.raises(NotFound):
        store.key("key_nope")
    with pytest.raises(ValueError, match="cannot change"):
        store.update_key(key.id, {"hash": "x"})


def test_budgets_and_past_spend(database: Database) -> None:
    budgets = BudgetStore(database)
    first = budgets.put("team", "t1", "month", limit_micros=10_000_000, soft_limit=0.8)
    again = budgets.put("team", "t1", "month", limit_micros=20_000_000, soft_limit=0.5)
    assert first.id == again.id and again.limit_micros == 20_000_000 and again.to_dict()["limit_usd"] == 20
    SQLTraceStore(database).insert(
        [
            TraceRecord(id="s1", team_id="t1", cost_micros=100_001),
            TraceRecord(id="s2", team_id="t1", cost_micros=200_002),
        ]
    )
    assert budgets.spent_since([again], time.time()) == {again.id: 300_003}
    assert budgets.delete(again.id) and budgets.all() == []


def test_audit_chain(database: Database) -> None:
    audit = AuditLog(database)
    for i in range(3):
        audit.append("key:admin", "key.created", f"key:k{i}", before=None, after={"i": i, "at": 1.5})
    assert audit.verify().ok
    with database.engine.begin() as conn:
        conn.execute(text("UPDATE audit_log SET target = 'key:other' WHERE seq = 2"))
    verdict = audit.verify()
    assert (verdict.ok, verdict.first_bad) == (False, 2)


def test_secrets(database: Database, tmp_path: Path) -> None:
    store = SecretStore(database, SecretBox.from_settings(Settings.model_validate({"data_dir": str(tmp_path)})))
    assert store.put("openai-prod", "sk-one") is True
    assert store.put("openai-prod", "sk-two") is False
    assert store.get("openai-prod") == "sk-two"
    with database.engine.connect() as conn:
        stored = conn.execute(text("SELECT ciphertext FROM provider_secrets")).scalar()
    assert "sk-two" not in str(stored)


def test_spend_report(database: Database) -> None:
    SQLTraceStore(database).insert(
        [
            TraceRecord(id="r1", team_id="t1", route="a", tags=["x"], cost_micros=100_000),
            TraceRecord(id="r2", team_id="t2", route="a", tags=["x", "y"], cost_micros=200_000),
        ]
    )
    reports = SpendReports(database)
    by_tag = reports.report(by="tag", period="day", now=time.time())
    # Sums are exact: $0.1 + $0.2 is $0.3, not 0.30000000000000004.
    assert {r.group: r.cost_micros for r in by_tag.rows} == {"x": 300_000, "y": 200_000}
    assert by_tag.total_cost_micros == 300_000 and by_tag.to_dict()["total_cost"] == 0.3
    mine = reports.report(by="route", period="total", now=time.time(), team_id="t1")
    assert [(r.group, r.cost_micros) for r in mine.rows] == [("a", 100_000)]

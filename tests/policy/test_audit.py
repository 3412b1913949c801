"""The audit log's hash chain: appends link up, and hand edits or deletions are named."""

from __future__ import annotations

import itertools
from pathlib import Path

import pytest
from sqlalchemy import text

from lmdeck.db import Database
from lmdeck.policy.audit import GENESIS, AuditLog


@pytest.fixture
def audit(tmp_path: Path) -> AuditLog:
    db = Database(f"sqlite:///{tmp_path / 'store.db'}")
    db.migrate()
    log = AuditLog(db)
    for i in range(5):
        log.append("key:admin", "key.created", f"key:k{i}", after={"role": "viewer", "n": i})
    return log


def test_entries_link_each_to_the_previous(audit: AuditLog) -> None:
    entries = audit.entries()
    assert [e.seq for e in entries] == [1, 2, 3, 4, 5]
    assert entries[0].prev_hash == GENESIS
    for before, after in itertools.pairwise(entries):
        assert after.prev_hash == before.hash
    assert entries[2].to_dict()["after"] == {"n": 2, "role": "viewer"}
    assert audit.verify().ok
    assert audit.verify().entries == 5


def test_an_empty_log_verifies(tmp_path: Path) -> None:
    db = Database(f"sqlite:///{tmp_path / 'empty.db'}")
    db.migrate()
    assert AuditLog(db).verify().ok


def test_an_edited_entry_is_named(audit: AuditLog) -> None:
    with audit.db.engine.begin() as conn:
        conn.execute(text('UPDATE audit_log SET after_state = \'{"role":"admin"}\' WHERE seq = 3'))
    verdict = audit.verify()
    assert not verdict.ok
    assert verdict.first_bad == 3
    assert "edited" in (verdict.problem or "")


def test_an_edited_actor_is_named(audit: AuditLog) -> None:
    with audit.db.engine.begin() as conn:
        conn.execute(text("UPDATE audit_log SET actor = 'key:someone-else' WHERE seq = 2"))
    assert audit.verify().first_bad == 2


def test_a_deleted_entry_is_named(audit: AuditLog) -> None:
    with audit.db.engine.begin() as conn:
        conn.execute(text("DELETE FROM audit_log WHERE seq = 2"))
    verdict = audit.verify()
    assert not verdict.ok
    assert verdict.first_bad == 2
    assert "deleted" in (verdict.problem or "")


def test_deleting_the_newest_entry_is_caught_by_the_head(audit: AuditLog) -> None:
    with audit.db.engine.begin() as conn:
        conn.execute(text("DELETE FROM audit_log WHERE seq = 5"))
    verdict = audit.verify()
    assert (verdict.ok, verdict.first_bad) == (False, 5)


def test_a_relinked_entry_is_named(audit: AuditLog) -> None:
    with audit.db.engine.begin() as conn:
        conn.execute(text("DELETE FROM audit_log WHERE seq = 3"))
        conn.execute(text("UPDATE audit_log SET seq = 3 WHERE seq = 4"))
        conn.execute(text("UPDATE audit_log SET seq = 4 WHERE seq = 5"))
        conn.execute(text("UPDATE audit_head SET seq = 4"))
    verdict = audit.verify()
    assert (verdict.ok, verdict.first_bad) == (False, 3)


async def test_record_appends_from_async_code(audit: AuditLog) -> None:
    entry = await audit.record("key:admin", "budget.changed", "team:t1", before={"limit": 1}, after={"limit": 2})
    assert entry.seq == 6
    assert audit.entries(action="budget.changed")[0].hash == entry.hash
    assert audit.verify().ok


def test_concurrent_appends_keep_one_chain(audit: AuditLog) -> None:
    import threading

    other = AuditLog(audit.db)  # a second writer, as another process would be

    def write(log: AuditLog, n: int) -> None:
        for i in range(20):
            log.append("key:admin", "config.applied", f"w{n}:{i}")

    threads = [threading.Thread(target=write, args=(log, n)) for n, log in enumerate([audit, other, audit, other])]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    verdict = audit.verify()
    assert verdict.ok, verdict.problem
    assert verdict.entries == 85

"""Migrations ``0210_registry_owners`` and ``0310_evaluation_owners`` on a store written before them:
existing rows go to the team of the key that created them, datasets to their traces' team."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, text

from lmdeck.db import Database
from lmdeck.db.migrations import load_migration_modules, migrations
from lmdeck.policy.ownership import Owner
from lmdeck.protocol.traces import TraceRecord
from lmdeck.registry.datasets import DatasetStore
from lmdeck.registry.versions import VersionStore
from lmdeck.tracing.sql_store import SQLTraceStore

OWNER_MIGRATIONS = ("0210_registry_owners", "0310_evaluation_owners")


def migrate_before_owners(db: Database) -> None:
    """The store as an lmdeck without team ownership left it."""
    load_migration_modules()
    with db.engine.begin() as conn:
        conn.execute(text("CREATE TABLE lmdeck_migrations (name VARCHAR(200) PRIMARY KEY, applied_at FLOAT)"))
        for migration in migrations.ordered():
            if migration.name in OWNER_MIGRATIONS:
                continue
            migration.fn(conn)
            conn.execute(text("INSERT INTO lmdeck_migrations VALUES (:n, :t)"), {"n": migration.name, "t": time.time()})


def insert(conn: Connection, table: str, **values: object) -> None:
    columns = ", ".join(values)
    conn.execute(text(f"INSERT INTO {table} ({columns}) VALUES ({', '.join(':' + c for c in values)})"), values)


def test_existing_rows_get_their_creators_or_their_traces_team(tmp_path: Path) -> None:
    db = Database(f"sqlite:///{tmp_path / 'old.db'}")
    migrate_before_owners(db)
    now = time.time()
    of_a, of_b = TraceRecord(route="r", team_id="team_a"), TraceRecord(route="r", team_id="team_b")
    SQLTraceStore(db).insert([of_a, of_b])
    with db.engine.begin() as conn:
        for team in ("team_a", "team_b"):
            insert(conn, "teams", id=team, name=team, created_at=now)
        keys: list[tuple[str, str | None]] = [("key_a", "team_a"), ("key_admin", None)]
        for key, key_team in keys:
            insert(conn, "api_keys", id=key, name=key, role="developer", team_id=key_team, created_at=now)
        for kind in ("prompt", "model"):
            insert(conn, f"registry_{kind}s", name=f"{kind}-of-a", created_at=now, created_by="key:key_a")
            insert(conn, f"registry_{kind}s", name=f"{kind}-of-admin", created_at=now, created_by="key:key_admin")
            insert(conn, f"registry_{kind}s", name=f"{kind}-of-config", created_at=now, created_by="config")
        for name in ("uploaded", "b-traces", "mixed"):
            insert(conn, "registry_datasets", name=name, created_at=now, created_by="key:key_a")
        for name, traces in (("uploaded", [None]), ("b-traces", [of_b.id]), ("mixed", [of_a.id, of_b.id])):
            for i, trace_id in enumerate(traces):
                insert(conn, "registry_dataset_rows", name=name, version=1, idx=i, row_data="{}", trace_id=trace_id)
        insert(
            conn, "eval_experiments", name="exp", spec="{}", status="running", created_at=now, created_by="key:key_a"
        )
    applied = db.migrate()
    assert set(OWNER_MIGRATIONS) <= set(applied)
    for kind in ("prompt", "model"):
        store: VersionStore[Any] = VersionStore(db, kind)
        assert store.owner(f"{kind}-of-a") == Owner("team_a", "team")
        assert store.owner(f"{kind}-of-admin") == Owner(None, "team")
        assert store.owner(f"{kind}-of-config") == Owner(None, "team")
    datasets = DatasetStore(db)
    assert datasets.owner("uploaded") == Owner("team_a")
    assert datasets.owner("b-traces") == Owner("team_b")
    assert datasets.owner("mixed") == Owner(None)
    with db.engine.connect() as conn:
        assert conn.execute(text("SELECT team_id, visibility FROM eval_experiments")).one() == ("team_a", "team")
    assert db.migrate() == []
    db.dispose()

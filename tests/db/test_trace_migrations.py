"""Migration ``0001_traces`` on each backend: tables, indexes, recorded once."""

from __future__ import annotations

from sqlalchemy import inspect, text

from lmdeck.db import Database


def test_traces_tables_and_indexes_exist(database: Database) -> None:
    inspector = inspect(database.engine)
    assert {"traces", "trace_tags", "lmdeck_migrations"} <= set(inspector.get_table_names())
    indexed = {tuple(ix["column_names"]) for ix in inspector.get_indexes("traces")}
    for column in ("created_at", "route", "key_id", "team_id", "status_code"):
        assert (column,) in indexed, f"no index on traces.{column}"
    assert inspector.get_pk_constraint("traces")["constrained_columns"] == ["id"]


def test_migrating_again_applies_nothing(database: Database) -> None:
    assert database.migrate() == []
    with database.engine.connect() as conn:
        names = [row[0] for row in conn.execute(text("SELECT name FROM lmdeck_migrations WHERE name = '0001_traces'"))]
    assert names == ["0001_traces"]

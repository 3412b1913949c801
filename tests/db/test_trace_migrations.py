"""The trace migrations on each backend: tables, indexes, recorded once."""

from __future__ import annotations

from sqlalchemy import inspect, text

from lmdeck.db import Database
from lmdeck.tracing import schema
from lmdeck.tracing.rollups import rollup_metadata


def test_traces_tables_and_indexes_exist(database: Database) -> None:
    inspector = inspect(database.engine)
    assert {"traces", "trace_tags", "lmdeck_migrations"} <= set(inspector.get_table_names())
    leading = {ix["column_names"][0] for ix in inspector.get_indexes("traces")}
    for column in ("created_at", "route", "key_id", "team_id", "status_code", "prompt_name"):
        assert column in leading, f"no index starts with traces.{column}"
    assert inspector.get_pk_constraint("traces")["constrained_columns"] == ["id"]


def test_migrating_again_applies_nothing(database: Database) -> None:
    assert database.migrate() == []
    with database.engine.connect() as conn:
        names = [row[0] for row in conn.execute(text("SELECT name FROM lmdeck_migrations WHERE name = '0001_traces'"))]
    assert names == ["0001_traces"]


def test_the_live_table_definitions_match_what_the_migrations_built(database: Database) -> None:
    """``tracing.schema`` restates the tables that ``tracing.migrations`` created: the two must not drift."""
    inspector = inspect(database.engine)
    for table in [*schema.metadata.sorted_tables, *rollup_metadata.sorted_tables]:
        built = {c["name"]: c["nullable"] for c in inspector.get_columns(table.name)}
        declared = {c.name: bool(c.nullable) for c in table.columns}
        assert built == declared, f"{table.name}: migrated {built} but declared {declared}"
        primary = inspector.get_pk_constraint(table.name)["constrained_columns"]
        assert sorted(primary) == sorted(c.name for c in table.primary_key.columns), table.name

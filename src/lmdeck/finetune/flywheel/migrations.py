"""The ``flywheel_runs`` table: one row per run, its request and each step's state and output as JSON."""

from __future__ import annotations

from sqlalchemy import Connection, text

from lmdeck.db.migrations import migrations


@migrations("0650_flywheel_runs")
def create_flywheel_runs(conn: Connection) -> None:
    conn.execute(
        text(
            """CREATE TABLE flywheel_runs (
            id VARCHAR(40) PRIMARY KEY, status VARCHAR(16) NOT NULL, spec TEXT NOT NULL, steps TEXT NOT NULL,
            error TEXT, team_id VARCHAR(128), created_by VARCHAR(200),
            created_at DOUBLE PRECISION NOT NULL, updated_at DOUBLE PRECISION NOT NULL)"""
        )
    )
    conn.execute(text("CREATE INDEX flywheel_runs_by_time ON flywheel_runs (created_at)"))

"""The ``delivery_shadow_pairs`` table: each judged (baseline answer, candidate answer) pair of a release."""

from __future__ import annotations

from sqlalchemy import Connection, text

from lmdeck.db.migrations import migrations


@migrations("0410_delivery_shadow")
def create_shadow_pairs(conn: Connection) -> None:
    conn.execute(
        text(
            """CREATE TABLE delivery_shadow_pairs (
            id VARCHAR(32) PRIMARY KEY, release VARCHAR(128) NOT NULL,
            baseline_trace_id VARCHAR(64), candidate_trace_id VARCHAR(64), outcome VARCHAR(8),
            judgements TEXT NOT NULL, baseline TEXT, candidate TEXT, cost_micros BIGINT NOT NULL,
            error TEXT, created_at DOUBLE PRECISION NOT NULL)"""
        )
    )
    conn.execute(text("CREATE INDEX delivery_shadow_pairs_by_release ON delivery_shadow_pairs (release, created_at)"))

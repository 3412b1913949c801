"""The release tables: releases, their history (every transition with its evidence) and exposures.

``delivery_release_exposures`` holds one row per request a release covered (which variant served
it, at which step, and what it observed), written in the background by
:class:`lmdeck.delivery.exposures.ReleaseExposures`; the analysis reads candidate and baseline from it
and joins online scores and feedback by ``trace_id``.
"""

from __future__ import annotations

from sqlalchemy import Connection, text

from lmdeck.db.migrations import migrations

_TABLES = [
    """CREATE TABLE delivery_releases (
        name VARCHAR(128) PRIMARY KEY, route VARCHAR(200) NOT NULL, spec TEXT NOT NULL, state VARCHAR(16) NOT NULL,
        step INTEGER, baseline TEXT, created_at DOUBLE PRECISION NOT NULL, created_by VARCHAR(200),
        started_at DOUBLE PRECISION, step_started_at DOUBLE PRECISION, finished_at DOUBLE PRECISION,
        reason TEXT, last_analysis TEXT, revision INTEGER NOT NULL DEFAULT 0,
        team_id VARCHAR(64), visibility VARCHAR(16) NOT NULL DEFAULT 'team')""",
    "CREATE INDEX delivery_releases_by_state ON delivery_releases (state)",
    """CREATE TABLE delivery_release_events (
        release VARCHAR(128) NOT NULL, seq INTEGER NOT NULL, at DOUBLE PRECISION NOT NULL,
        action VARCHAR(32) NOT NULL, from_state VARCHAR(16), to_state VARCHAR(16) NOT NULL, step INTEGER,
        percent DOUBLE PRECISION, actor VARCHAR(200) NOT NULL, reason TEXT, evidence TEXT,
        PRIMARY KEY (release, seq))""",
    """CREATE TABLE delivery_release_exposures (
        trace_id VARCHAR(64) PRIMARY KEY, release VARCHAR(128) NOT NULL, variant VARCHAR(16) NOT NULL,
        step INTEGER NOT NULL, status_code INTEGER NOT NULL, latency_ms DOUBLE PRECISION NOT NULL,
        ttft_ms DOUBLE PRECISION, cost DOUBLE PRECISION NOT NULL, blocked INTEGER NOT NULL,
        created_at DOUBLE PRECISION NOT NULL)""",
    "CREATE INDEX delivery_release_exposures_by_release ON delivery_release_exposures (release, step, variant)",
]


@migrations("0400_delivery_releases")
def create_releases(conn: Connection) -> None:
    for statement in _TABLES:
        conn.execute(text(statement))

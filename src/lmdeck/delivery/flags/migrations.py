"""The feature-flag tables: the flags as they are now, and every change to them.

``delivery_flags`` holds one row per live flag (its spec as JSON and its version);
``delivery_flag_history`` keeps each change, deletions included, in order. The history's
row count is the flags' revision: it only grows, so a gateway that sees it move reloads.
"""

from __future__ import annotations

from sqlalchemy import Connection, text

from lmdeck.db.migrations import migrations

_TABLES = [
    """CREATE TABLE delivery_flags (
        name VARCHAR(128) PRIMARY KEY, spec TEXT NOT NULL, version INTEGER NOT NULL,
        created_at DOUBLE PRECISION NOT NULL, created_by VARCHAR(200),
        updated_at DOUBLE PRECISION NOT NULL, updated_by VARCHAR(200))""",
    """CREATE TABLE delivery_flag_history (
        name VARCHAR(128) NOT NULL, version INTEGER NOT NULL, action VARCHAR(16) NOT NULL, spec TEXT,
        actor VARCHAR(200), at DOUBLE PRECISION NOT NULL, PRIMARY KEY (name, version))""",
    "CREATE INDEX delivery_flag_history_by_time ON delivery_flag_history (at)",
]


@migrations("0420_delivery_flags")
def create_flags(conn: Connection) -> None:
    for statement in _TABLES:
        conn.execute(text(statement))

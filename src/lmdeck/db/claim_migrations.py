"""The table of :mod:`lmdeck.db.claims`: who runs each piece of long-running work now.

``lmdeck_work_claims``: one row per claimed piece of work: its ``kind`` (``batch``, ``finetune_job``)
and ``id``, the ``owner`` (the claiming process's random instance id) and ``expires_at`` (epoch
seconds). Numbered in the store's own 06xx block.
"""

from __future__ import annotations

from sqlalchemy import Connection, text

from lmdeck.db.migrations import migrations


@migrations("0660_work_claims")
def create_work_claims(conn: Connection) -> None:
    conn.execute(
        text(
            """CREATE TABLE lmdeck_work_claims (
            kind VARCHAR(32) NOT NULL, id VARCHAR(120) NOT NULL, owner VARCHAR(64) NOT NULL,
            expires_at DOUBLE PRECISION NOT NULL, PRIMARY KEY (kind, id))"""
        )
    )

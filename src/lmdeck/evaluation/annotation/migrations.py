"""The annotation queue tables.

``annotation_items`` holds one row per trace in a queue (unique per queue and trace, so a
trace enters a queue once however often a rule or a person sends it) with its claim: who
holds it, the claim's token and until when. ``annotation_labels`` holds at most one label per
item (its primary key is the item's), which is what makes labelling exactly-once.
"""

from __future__ import annotations

from sqlalchemy import Connection, text

from lmdeck.db.migrations import migrations

_TABLES = [
    """CREATE TABLE annotation_queues (
        name VARCHAR(128) PRIMARY KEY, spec TEXT NOT NULL, team_id VARCHAR(128),
        visibility VARCHAR(16) NOT NULL DEFAULT 'team', watermark DOUBLE PRECISION,
        created_at DOUBLE PRECISION NOT NULL, created_by VARCHAR(200), updated_at DOUBLE PRECISION NOT NULL)""",
    """CREATE TABLE annotation_items (
        id VARCHAR(32) PRIMARY KEY, queue VARCHAR(128) NOT NULL, trace_id VARCHAR(64) NOT NULL,
        team_id VARCHAR(128), source VARCHAR(16) NOT NULL, reason TEXT, status VARCHAR(16) NOT NULL,
        claimed_by VARCHAR(200), claim_token VARCHAR(64), lease_until DOUBLE PRECISION,
        created_at DOUBLE PRECISION NOT NULL, labelled_at DOUBLE PRECISION,
        CONSTRAINT uq_annotation_items_queue_trace UNIQUE (queue, trace_id))""",
    "CREATE INDEX ix_annotation_items_queue_status ON annotation_items (queue, status, created_at)",
    """CREATE TABLE annotation_labels (
        item_id VARCHAR(32) PRIMARY KEY, queue VARCHAR(128) NOT NULL, trace_id VARCHAR(64) NOT NULL,
        score DOUBLE PRECISION, category VARCHAR(128), correction TEXT, comment TEXT,
        author VARCHAR(200) NOT NULL, created_at DOUBLE PRECISION NOT NULL)""",
    "CREATE INDEX ix_annotation_labels_queue ON annotation_labels (queue, created_at)",
]


@migrations("0320_annotation_queues")
def create_annotation_queues(conn: Connection) -> None:
    for statement in _TABLES:
        conn.execute(text(statement))

"""The tables of ``/v1/files`` and ``/v1/batches``.

``gateway_files``: one row per file (owner team and key, purpose, name, size, where its content lies
under the data directory). ``gateway_batches``: one row per batch (owner, status, the
:class:`~lmdeck.protocol.batches.BatchObject` as JSON text). ``gateway_batch_rows``: the done-set of
each batch: one row per input line whose result is in the output or error file, so a restarted
gateway resumes a batch without running those lines again. Numbered in the gateway's 00xx block.
"""

from __future__ import annotations

from sqlalchemy import Connection, text

from lmdeck.db.migrations import migrations

_TABLES = [
    """CREATE TABLE gateway_files (
        id VARCHAR(80) PRIMARY KEY, team_id VARCHAR(64), key_id VARCHAR(64), purpose VARCHAR(32) NOT NULL,
        filename VARCHAR(512) NOT NULL, bytes BIGINT NOT NULL, created_at DOUBLE PRECISION NOT NULL,
        path VARCHAR(512) NOT NULL)""",
    "CREATE INDEX gateway_files_by_team ON gateway_files (team_id, created_at)",
    """CREATE TABLE gateway_batches (
        id VARCHAR(80) PRIMARY KEY, team_id VARCHAR(64), key_id VARCHAR(64), status VARCHAR(16) NOT NULL,
        created_at DOUBLE PRECISION NOT NULL, body TEXT NOT NULL)""",
    "CREATE INDEX gateway_batches_by_team ON gateway_batches (team_id, created_at)",
    """CREATE TABLE gateway_batch_rows (
        batch_id VARCHAR(80) NOT NULL, line INTEGER NOT NULL, ok BOOLEAN NOT NULL,
        PRIMARY KEY (batch_id, line))""",
]


@migrations("0055_gateway_files_batches")
def create_files_batches(conn: Connection) -> None:
    for statement in _TABLES:
        conn.execute(text(statement))

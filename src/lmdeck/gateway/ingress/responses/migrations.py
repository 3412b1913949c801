"""The stored responses of ``POST /v1/responses`` (``store: true``).

``gateway_responses`` holds one row per stored response: its owner (team and key), when it was
made and when it expires (Unix seconds), and the :class:`~lmdeck.protocol.responses.StoredResponse`
as JSON text. Numbered in the 00xx block: the gateway's tables sit between the traces' and the
policy's (01xx).
"""

from __future__ import annotations

from sqlalchemy import Connection, text

from lmdeck.db.migrations import migrations

_TABLES = [
    """CREATE TABLE gateway_responses (
        id VARCHAR(80) PRIMARY KEY, team_id VARCHAR(64), key_id VARCHAR(64),
        created_at DOUBLE PRECISION NOT NULL, expires_at DOUBLE PRECISION NOT NULL, body TEXT NOT NULL)""",
    "CREATE INDEX gateway_responses_by_expiry ON gateway_responses (expires_at)",
]


@migrations("0050_gateway_responses")
def create_responses(conn: Connection) -> None:
    for statement in _TABLES:
        conn.execute(text(statement))

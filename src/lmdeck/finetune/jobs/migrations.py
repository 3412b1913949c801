"""The fine-tuning job tables: jobs (the ``fine_tuning.job`` object as JSON, with the columns listings
filter on), their events (messages and the loss curve) and their checkpoints."""

from __future__ import annotations

from sqlalchemy import Connection, text

from lmdeck.db.migrations import migrations

_TABLES = [
    """CREATE TABLE finetune_jobs (
        id VARCHAR(64) PRIMARY KEY, team_id VARCHAR(128), key_id VARCHAR(128), status VARCHAR(32) NOT NULL,
        created_at DOUBLE PRECISION NOT NULL, body TEXT NOT NULL, request TEXT NOT NULL, runner_state TEXT)""",
    "CREATE INDEX finetune_jobs_by_team ON finetune_jobs (team_id, created_at)",
    "CREATE INDEX finetune_jobs_by_status ON finetune_jobs (status)",
    """CREATE TABLE finetune_job_events (
        id VARCHAR(64) PRIMARY KEY, job_id VARCHAR(64) NOT NULL, seq INTEGER NOT NULL,
        created_at DOUBLE PRECISION NOT NULL, level VARCHAR(8) NOT NULL, type VARCHAR(16) NOT NULL,
        message TEXT NOT NULL, data TEXT)""",
    "CREATE UNIQUE INDEX finetune_job_events_by_job ON finetune_job_events (job_id, seq)",
    """CREATE TABLE finetune_job_checkpoints (
        id VARCHAR(64) PRIMARY KEY, job_id VARCHAR(64) NOT NULL, step INTEGER NOT NULL, path TEXT NOT NULL,
        metrics TEXT NOT NULL, created_at DOUBLE PRECISION NOT NULL)""",
    "CREATE UNIQUE INDEX finetune_job_checkpoints_by_job ON finetune_job_checkpoints (job_id, step)",
]


@migrations("0450_finetune_jobs")
def create_finetune_jobs(conn: Connection) -> None:
    for statement in _TABLES:
        conn.execute(text(statement))

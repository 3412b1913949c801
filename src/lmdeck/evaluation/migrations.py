"""The evaluation tables: eval runs and their rows, feedback, online scores, rules, experiments.

Scores and feedback name the trace they judge by its ``traces.id`` and copy the
trace's route, prompt version and upstream model, so aggregating them by version
needs no join with the (much larger) traces table.
"""

from __future__ import annotations

from sqlalchemy import Connection, text

from lmdeck.db.migrations import migrations
from lmdeck.registry.migrations import add_owner_columns, creators_team

_ATTRIBUTION = (
    "route VARCHAR(200), prompt_name VARCHAR(128), prompt_version INTEGER, model VARCHAR(200), "
    "team_id VARCHAR(128), key_id VARCHAR(128)"
)

_TABLES = [
    """CREATE TABLE eval_runs (
        id VARCHAR(32) PRIMARY KEY, name VARCHAR(200), status VARCHAR(16) NOT NULL, spec TEXT NOT NULL,
        dataset VARCHAR(128) NOT NULL, dataset_version INTEGER NOT NULL, dataset_digest VARCHAR(64) NOT NULL,
        prompt VARCHAR(128), prompt_version INTEGER, route VARCHAR(200), model VARCHAR(200),
        row_count INTEGER NOT NULL, completed INTEGER NOT NULL, summary TEXT, error TEXT,
        created_at DOUBLE PRECISION NOT NULL, finished_at DOUBLE PRECISION,
        created_by VARCHAR(200), team_id VARCHAR(128))""",
    "CREATE INDEX eval_runs_by_time ON eval_runs (created_at)",
    """CREATE TABLE eval_results (
        run_id VARCHAR(32) NOT NULL, idx INTEGER NOT NULL, input TEXT, expected TEXT, output TEXT,
        scores TEXT NOT NULL, latency_ms DOUBLE PRECISION, input_tokens INTEGER, output_tokens INTEGER,
        cost DOUBLE PRECISION, trace_id VARCHAR(64), error TEXT, PRIMARY KEY (run_id, idx))""",
    f"""CREATE TABLE eval_feedback (
        id VARCHAR(32) PRIMARY KEY, trace_id VARCHAR(64) NOT NULL, name VARCHAR(128) NOT NULL,
        value DOUBLE PRECISION, label VARCHAR(128), comment TEXT, source VARCHAR(16) NOT NULL,
        author VARCHAR(200), {_ATTRIBUTION}, created_at DOUBLE PRECISION NOT NULL)""",
    "CREATE INDEX eval_feedback_by_trace ON eval_feedback (trace_id)",
    "CREATE INDEX eval_feedback_by_version ON eval_feedback (prompt_name, prompt_version, name)",
    f"""CREATE TABLE eval_trace_scores (
        id VARCHAR(32) PRIMARY KEY, trace_id VARCHAR(64) NOT NULL, rule VARCHAR(128) NOT NULL,
        evaluator VARCHAR(128) NOT NULL, value DOUBLE PRECISION, label VARCHAR(128), explanation TEXT,
        {_ATTRIBUTION}, created_at DOUBLE PRECISION NOT NULL)""",
    "CREATE INDEX eval_trace_scores_by_trace ON eval_trace_scores (trace_id)",
    "CREATE INDEX eval_trace_scores_by_version ON eval_trace_scores (route, prompt_name, prompt_version, evaluator)",
    """CREATE TABLE eval_online_rules (
        name VARCHAR(128) PRIMARY KEY, spec TEXT NOT NULL, enabled INTEGER NOT NULL,
        created_at DOUBLE PRECISION NOT NULL, created_by VARCHAR(200), updated_at DOUBLE PRECISION NOT NULL)""",
    """CREATE TABLE eval_experiments (
        name VARCHAR(128) PRIMARY KEY, spec TEXT NOT NULL, status VARCHAR(16) NOT NULL,
        created_at DOUBLE PRECISION NOT NULL, created_by VARCHAR(200), stopped_at DOUBLE PRECISION,
        outcome TEXT)""",
    """CREATE TABLE eval_exposures (
        trace_id VARCHAR(64) PRIMARY KEY, experiment VARCHAR(128) NOT NULL, variant VARCHAR(128) NOT NULL,
        subject VARCHAR(200), status_code INTEGER NOT NULL, latency_ms DOUBLE PRECISION NOT NULL,
        cost DOUBLE PRECISION NOT NULL, created_at DOUBLE PRECISION NOT NULL)""",
    "CREATE INDEX eval_exposures_by_variant ON eval_exposures (experiment, variant)",
]


@migrations("0300_evaluation")
def create_evaluation(conn: Connection) -> None:
    for statement in _TABLES:
        conn.execute(text(statement))


@migrations("0310_evaluation_owners")
def add_evaluation_owners(conn: Connection) -> None:
    """Experiments and online rules get an owning team, and eval runs (which had one) a visibility.

    Existing experiments and rules go to the team of the key that created them (the default
    team for the admin key, keys without a team and the config file).
    """
    for table in ("eval_experiments", "eval_online_rules"):
        add_owner_columns(conn, table)
        conn.execute(text(creators_team(table)))
    conn.execute(text("ALTER TABLE eval_runs ADD COLUMN visibility VARCHAR(16) NOT NULL DEFAULT 'team'"))


@migrations("0330_feedback_corrections")
def add_feedback_corrections(conn: Connection) -> None:
    """Feedback may carry a correction: the answer the model should have given, as JSON text."""
    conn.execute(text("ALTER TABLE eval_feedback ADD COLUMN correction TEXT"))


@migrations("0340_prompt_optimizations")
def create_prompt_optimizations(conn: Connection) -> None:
    """Prompt optimizations: a search's request, progress and result. Who may read one is who may read
    its prompt, so it has no owner of its own."""
    conn.execute(
        text(
            """CREATE TABLE prompt_optimizations (
        id VARCHAR(32) PRIMARY KEY, prompt VARCHAR(128) NOT NULL, from_version INTEGER NOT NULL,
        dataset VARCHAR(200) NOT NULL, status VARCHAR(16) NOT NULL, request TEXT NOT NULL, progress TEXT NOT NULL,
        result TEXT, error TEXT, created_at DOUBLE PRECISION NOT NULL, finished_at DOUBLE PRECISION,
        created_by VARCHAR(200))"""
        )
    )
    conn.execute(text("CREATE INDEX prompt_optimizations_by_prompt ON prompt_optimizations (prompt, created_at)"))

"""``lmdeck traces rollup --rebuild``: the rollups recomputed in the gateway's store."""

from __future__ import annotations

from pathlib import Path

from sqlalchemy import func, select
from typer.testing import CliRunner

from lmdeck.cli.main import app
from lmdeck.db import Database
from lmdeck.testing.traces import synthetic_traces
from lmdeck.tracing.rollups import DAY, trace_rollups
from lmdeck.tracing.sql_store import SQLTraceStore


def test_rollup_rebuild_recomputes_the_rollups_of_traces_stored_without_them(tmp_path: Path) -> None:
    db = Database(f"sqlite:///{tmp_path / 'lmdeck.db'}")
    db.migrate()
    records = synthetic_traces(400, start=1_780_000_000.0, span_s=86400, seed=1)
    SQLTraceStore(db, rollups=False).insert(records)
    env = {"LMDECK_DATA_DIR": str(tmp_path), "LMDECK_CONFIG": ""}
    result = CliRunner().invoke(app, ["traces", "rollup", "--rebuild"], env=env)
    assert result.exit_code == 0, result.output
    assert "from 400 traces" in result.output
    with db.engine.connect() as conn:
        stmt = select(func.sum(trace_rollups.c.requests), func.sum(trace_rollups.c.cost_micros))
        requests, cost = conn.execute(stmt.where(trace_rollups.c.grain == DAY, trace_rollups.c.level == 0)).one()
    db.dispose()
    assert (requests, cost) == (400, sum(r.cost_micros for r in records))


def test_rollup_without_an_action_or_a_store_says_what_to_pass(tmp_path: Path) -> None:
    env = {"LMDECK_DATA_DIR": str(tmp_path), "LMDECK_CONFIG": ""}
    result = CliRunner().invoke(app, ["traces", "rollup"], env=env)
    assert result.exit_code == 2 and "--rebuild" in result.output
    result = CliRunner().invoke(app, ["traces", "rollup", "--rebuild"], env=env)
    assert result.exit_code == 2 and "no lmdeck store" in result.output

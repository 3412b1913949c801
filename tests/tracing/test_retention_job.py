"""The retention job: on its schedule, old trace data goes in short chunks and recent data stays; counted and logged."""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry
from sqlalchemy import func, select

from lmdeck.app.assembly import build_gateway
from lmdeck.db import Database
from lmdeck.protocol.traces import TraceRecord
from lmdeck.settings import Settings
from lmdeck.testing.traces import synthetic_traces
from lmdeck.tracing import retention
from lmdeck.tracing.breakdowns import trace_breakdowns
from lmdeck.tracing.retention import Retention, cutoff
from lmdeck.tracing.retention_job import RetentionJob
from lmdeck.tracing.rollups import DAY, MINUTE, trace_rollups
from lmdeck.tracing.schema import traces
from lmdeck.tracing.sql_store import SQLTraceStore

NOW = 1_790_000_000.0
POLICY = Retention(raw_days=30, minute_days=7, rollup_days=60)


def oldest(db: Database, column: object, *where: object) -> float:
    with db.engine.connect() as conn:
        return float(conn.execute(select(func.min(column)).where(*where)).scalar_one())  # type: ignore[arg-type]


def loaded(db: Database) -> list[TraceRecord]:
    records = synthetic_traces(900, start=NOW - 90 * DAY, span_s=90 * DAY, seed=21)
    for record in records[::3]:
        record.tags = ["nightly"]
    SQLTraceStore(db).insert(records)
    return records


def assert_pruned_to_policy(db: Database, records: list[TraceRecord]) -> None:
    kept = [r for r in records if r.created_at >= cutoff(30, NOW)]
    assert 0 < len(kept) < len(records)
    assert SQLTraceStore(db).count() == len(kept)  # recent traces stay, old ones go
    assert oldest(db, traces.c.created_at) >= cutoff(30, NOW)
    assert oldest(db, trace_rollups.c.bucket, trace_rollups.c.grain == MINUTE) >= cutoff(7, NOW)
    assert oldest(db, trace_rollups.c.bucket, trace_rollups.c.grain > MINUTE) >= cutoff(60, NOW)
    assert oldest(db, trace_breakdowns.c.bucket) >= cutoff(60, NOW)
    # Hour and day rollups older than the raw traces stay: 60 days of history from 30 of traces.
    assert oldest(db, trace_rollups.c.bucket, trace_rollups.c.grain > MINUTE) < cutoff(30, NOW)


def test_a_run_deletes_old_rows_in_chunks_and_keeps_recent_ones(
    database: Database, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    records = loaded(database)
    monkeypatch.setattr(retention, "_CHUNK", 40)  # many short transactions
    registry = CollectorRegistry()
    job = RetentionJob(database, POLICY, registry=registry, clock=lambda: NOW)
    with caplog.at_level(logging.INFO, logger="lmdeck.tracing.retention_job"):
        pruned = job.run_once()
    assert pruned.traces > 40 and pruned.minute_rollups > 40 and pruned.rollups > 40 and pruned.breakdowns > 0
    assert_pruned_to_policy(database, records)
    for kind in ("traces", "minute_rollups", "rollups", "breakdowns"):
        counted = registry.get_sample_value("lmdeck_trace_rows_pruned_total", {"kind": kind})
        assert counted == getattr(pruned, kind), kind
    assert f"trace retention deleted {pruned.traces} traces" in caplog.text
    again = job.run_once()  # nothing left to delete
    assert (again.traces, again.minute_rollups, again.rollups, again.breakdowns) == (0, 0, 0, 0)


async def test_the_job_runs_on_its_schedule_in_the_background(database: Database) -> None:
    records = loaded(database)
    job = RetentionJob(database, POLICY, interval_s=0.05, first_delay_s=0.0, clock=lambda: NOW)
    await job.start()
    try:
        for _ in range(600):
            if job.runs >= 2:
                break
            await asyncio.sleep(0.05)
        assert job.runs >= 2, "the job did not run on its schedule"
    finally:
        await job.stop()
    assert_pruned_to_policy(database, records)


async def test_the_gateway_schedules_it_unless_turned_off(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path / "on")
    gateway = build_gateway(settings, announce_admin_key=False)
    try:
        jobs = [s for s in gateway.services if isinstance(s, RetentionJob)]
        assert len(jobs) == 1 and jobs[0].interval_s == 3600.0
        assert jobs[0].policy == Retention.from_settings(settings.tracing.retention)
        # Its counter is on the gateway's /metrics registry.
        assert "lmdeck_trace_rows_pruned_total" in gateway.metrics.exposition().decode()
        # Each run is in the audit log, with its counts per policy.
        assert jobs[0].batch_size == settings.tracing.retention.batch_size
        jobs[0].run_once()
        (entry,) = gateway.policy.audit.entries(action="retention.run")
        assert entry.actor == "system:retention"
        assert entry.to_dict()["after"]["policies"] == [{"policy": "tracing.retention", "traces": 0, "bodies": 0}]
    finally:
        await gateway.stop()
    off = Settings.model_validate(
        {"data_dir": str(tmp_path / "off"), "tracing": {"retention": {"prune_interval_s": None}}}
    )
    gateway = build_gateway(off, announce_admin_key=False)
    try:
        assert not [s for s in gateway.services if isinstance(s, RetentionJob)]
    finally:
        await gateway.stop()
    with pytest.raises(ValueError, match="interval_s"):
        RetentionJob(Database("sqlite://"), POLICY, interval_s=0)

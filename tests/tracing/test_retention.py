"""Retention: raw traces go first, rollups outlive them, and a rebuild keeps what retention left."""

from __future__ import annotations

from sqlalchemy import func, select, text

from lmdeck.db import Database
from lmdeck.testing.traces import synthetic_traces
from lmdeck.tracing.retention import Retention, cutoff, prune
from lmdeck.tracing.rollups import DAY, MINUTE, rebuild, trace_rollups
from lmdeck.tracing.signals import Signals
from lmdeck.tracing.sql_store import SQLTraceStore

NOW = 1_790_000_000.0


def spend(db: Database) -> tuple[int, int]:
    (total,) = Signals(db).totals(since=NOW - 90 * DAY)
    return total.requests, total.cost_micros


def count(db: Database, sql: str) -> int:
    with db.engine.connect() as conn:
        return int(conn.execute(text(sql)).scalar_one())


def test_raw_traces_go_after_raw_days_and_the_rollups_keep_their_totals(database: Database) -> None:
    store = SQLTraceStore(database)
    records = synthetic_traces(1200, start=NOW - 60 * DAY, span_s=60 * DAY, seed=3)
    store.insert([*records[:600], *(r for r in records[600:])])
    before = spend(database)
    assert before == (1200, sum(r.cost_micros for r in records))

    pruned = prune(database, Retention(raw_days=30, minute_days=7, rollup_days=396), now=NOW)
    kept = [r for r in records if r.created_at >= cutoff(30, NOW)]
    assert pruned.traces == 1200 - len(kept) > 0
    assert store.count() == len(kept)
    assert count(database, "SELECT COUNT(*) FROM trace_search") == len(kept)
    assert pruned.minute_rollups > 0 and pruned.rollups == 0
    with database.engine.connect() as conn:
        oldest_minute = conn.execute(
            select(func.min(trace_rollups.c.bucket)).where(trace_rollups.c.grain == MINUTE)
        ).scalar_one()
    assert oldest_minute >= cutoff(7, NOW)
    # Hours and days still hold everything: the 60-day totals are unchanged, and a rebuild keeps them.
    assert spend(database) == before
    assert rebuild(database) == len(kept)
    assert spend(database) == before


def test_rollups_go_after_rollup_days(database: Database) -> None:
    store = SQLTraceStore(database)
    store.insert(synthetic_traces(300, start=NOW - 20 * DAY, span_s=20 * DAY, seed=4))
    pruned = prune(database, Retention(raw_days=None, minute_days=None, rollup_days=10), now=NOW)
    assert pruned.traces == 0 and pruned.rollups > 0
    with database.engine.connect() as conn:
        oldest = conn.execute(select(func.min(trace_rollups.c.bucket)).where(trace_rollups.c.grain > MINUTE)).scalar()
    assert oldest >= cutoff(10, NOW)
    assert store.count() == 300

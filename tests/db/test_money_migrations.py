"""Migrations ``0003_trace_cost_micros`` and ``0104_budget_limit_micros`` on a store written before them:
floating-point dollars become whole micro-dollars, on each backend."""

from __future__ import annotations

import os
import time
from collections.abc import Iterator

import pytest
from sqlalchemy import inspect, text

from lmdeck.db import Database
from lmdeck.db.migrations import Migrations, load_migration_modules, migrations
from lmdeck.db.scratch import scratch_database
from lmdeck.policy.budgets import BudgetStore
from lmdeck.policy.spend import SpendReports

MONEY = ("0003_trace_cost_micros", "0104_budget_limit_micros")
#: Trace migrations newer than the money one: an older store has not run them either.
LATER = ("0004_trace_rollups", "0007_trace_rollup_levels", "0008_trace_breakdowns", "0006a_trace_cache_savings")


@pytest.fixture(params=["sqlite", "postgresql"])
def older_database(request: pytest.FixtureRequest) -> Iterator[Database]:
    """A store migrated by every migration except the money ones, as an older lmdeck left it."""
    server = "sqlite://" if request.param == "sqlite" else os.environ.get("LMDECK_TEST_POSTGRES_URL")
    if not server:
        pytest.skip("set LMDECK_TEST_POSTGRES_URL (scripts/test-services.sh does) to test on PostgreSQL")
    load_migration_modules()
    before = Migrations()
    for migration in migrations.ordered():
        if migration.name not in MONEY + LATER:
            before(migration.name)(migration.fn)
    with scratch_database(server) as url:
        db = Database(url)
        with db.engine.begin() as conn:
            before.apply(conn)
        try:
            yield db
        finally:
            db.dispose()


def test_dollars_become_micro_dollars(older_database: Database) -> None:
    db = older_database
    now = time.time()
    with db.engine.begin() as conn:
        for i, cost in enumerate((0.1, 0.2, 0.000123, 2.78e-17)):
            conn.execute(
                text(
                    "INSERT INTO traces (id, trace_id, request_id, span_id, created_at, kind, stream, team_id, cost, "
                    "status_code, input_tokens, output_tokens, cached_tokens, latency_ms, retries, fallback_used, "
                    "cache_hit) VALUES (:id, :id, '', '', :t, 'chat', false, 't1', :c, 200, 0, 0, 0, 0, 0, false, false)"
                ),
                {"id": f"old{i}", "t": now, "c": cost},
            )
        conn.execute(
            text(
                "INSERT INTO budgets (id, scope, subject_id, period, limit_usd, soft_limit, created_at, updated_at) "
                "VALUES ('b1', 'team', 't1', 'total', 2.18, 0.8, 0, 0)"
            )
        )
    assert db.migrate() == sorted(MONEY + LATER)
    columns = {c["name"] for c in inspect(db.engine).get_columns("traces")}
    assert "cost" not in columns and {"cost_micros", "cache_write_tokens"} <= columns
    assert "limit_usd" not in {c["name"] for c in inspect(db.engine).get_columns("budgets")}
    with db.engine.connect() as conn:
        costs = dict(conn.execute(text("SELECT id, cost_micros FROM traces ORDER BY id")).all())
    assert costs == {"old0": 100_000, "old1": 200_000, "old2": 123, "old3": 0}
    (budget,) = BudgetStore(db).all()
    assert budget.limit_micros == 2_180_000
    assert BudgetStore(db).spent_since([budget], now) == {"b1": 300_123}
    report = SpendReports(db).report(by="team", period="total", now=now)
    assert report.total_cost_micros == 300_123 and report.to_dict()["total_cost"] == 0.300123
    assert db.migrate() == []

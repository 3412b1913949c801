"""Per team and per route retention: the most specific policy decides, legal holds stay, deletion goes in
batches, and spend totals (rollups) do not move."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import event, select, text

from lmdeck.db import Database
from lmdeck.protocol.retention import RetentionPolicySpec
from lmdeck.protocol.traces import TraceRecord, new_trace_id
from lmdeck.tracing.expiry import cutoff, held, set_hold
from lmdeck.tracing.query import TraceQuery
from lmdeck.tracing.retention import Retention, prune
from lmdeck.tracing.retention_policies import GLOBAL, RetentionPolicyStore
from lmdeck.tracing.rollups import DAY, rebuild
from lmdeck.tracing.schema import traces
from lmdeck.tracing.signals import Signals
from lmdeck.tracing.sql_store import SQLTraceStore

NOW = 1_790_000_000.0
TEAMS = ("team-a", "team-b", None)
ROUTES = ("support", "chat")
AGES = (1, 5, 10, 20, 40)  # days old

POLICIES = [
    RetentionPolicySpec(name="a", team="team-a", body_days=3),  # team-a: bodies 3d, traces as global (30d)
    RetentionPolicySpec(name="a-support", team="team-a", route="support", body_days=8, trace_days=15),
    RetentionPolicySpec(name="support", route="support", trace_days=9),  # every other team's support traces
]
GLOBAL_RETENTION = Retention(raw_days=30, minute_days=None, rollup_days=None, body_days=None)


def record(team: str | None, route: str, age_days: int, n: int) -> TraceRecord:
    at = cutoff(age_days, NOW) + 3600.0 + n  # inside the UTC day age_days before NOW's
    return TraceRecord(
        id=f"{team or 'none'}-{route}-{age_days}-{n}",
        trace_id=new_trace_id(),
        created_at=at,
        team_id=team,
        key_id=f"key-{team}",
        route=route,
        target=f"fake/{route}",
        upstream_model="fake-model",
        status_code=200,
        input_tokens=10 + n,
        output_tokens=5,
        cost_micros=1000 + n,
        latency_ms=50.0,
        request_body={"messages": [{"role": "user", "content": f"question {n} about invoices"}]},
        response_body={"choices": [{"message": {"role": "assistant", "content": f"answer {n}"}}]},
        metadata={"n": str(n)},
    )


def seeded(db: Database, per_cell: int = 3) -> list[TraceRecord]:
    records = [
        record(team, route, age, n) for team in TEAMS for route in ROUTES for age in AGES for n in range(per_cell)
    ]
    SQLTraceStore(db).insert(records)
    return records


def expected(r: TraceRecord) -> tuple[int | None, int | None]:
    """(body_days, trace_days) a trace is under, written out by hand from POLICIES."""
    if r.team_id == "team-a" and r.route == "support":
        return 8, 15
    if r.team_id == "team-a":
        return 3, 30
    if r.route == "support":
        return None, 9
    return None, 30


def stored(db: Database) -> dict[str, tuple[Any, Any]]:
    with db.engine.connect() as conn:
        rows = conn.execute(select(traces.c.id, traces.c.request_body, traces.c.response_body)).all()
    return {row[0]: (row[1], row[2]) for row in rows}


def spend(db: Database) -> tuple[int, int]:
    (total,) = Signals(db).totals(since=NOW - 90 * DAY)
    return total.requests, total.cost_micros


def test_each_trace_is_expired_by_the_most_specific_policy_and_held_ones_stay(database: Database) -> None:
    records = seeded(database)
    hold_me = next(
        r for r in records if r.team_id == "team-b" and r.route == "support" and r.created_at < NOW - 39 * DAY
    )
    assert set_hold(database, hold_me.id, True) is False
    assert set_hold(database, "no-such-trace", True) is None
    before = spend(database)

    statements: list[str] = []

    def count(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        if statement.lstrip().upper().startswith(("DELETE FROM TRACES ", "UPDATE TRACES SET")):
            statements.append(statement)

    event.listen(database.engine, "before_cursor_execute", count)
    try:
        pruned = prune(database, GLOBAL_RETENTION, now=NOW, stored=POLICIES, batch=4)
    finally:
        event.remove(database.engine, "before_cursor_execute", count)

    kept = stored(database)
    deleted = {r.id for r in records if r.created_at < cutoff(expected(r)[1] or 10**6, NOW)} - {hold_me.id}
    cleared = {
        r.id
        for r in records
        if r.id not in deleted and expected(r)[0] is not None and r.created_at < cutoff(expected(r)[0] or 0, NOW)
    } - {hold_me.id}
    assert deleted and cleared
    assert set(kept) == {r.id for r in records} - deleted  # exactly the expired traces are gone
    for trace_id, (request_body, response_body) in kept.items():
        if trace_id in cleared:
            assert request_body is None and response_body is None, trace_id
        else:
            assert request_body is not None and response_body is not None, trace_id
    assert held(database) == [hold_me.id]
    assert pruned.traces == len(deleted) and pruned.bodies == len(cleared)
    by_policy = {e.policy: (e.traces, e.bodies) for e in pruned.by_policy}
    assert set(by_policy) == {"a", "a-support", "support", GLOBAL}
    assert sum(t for t, _ in by_policy.values()) == len(deleted)
    assert by_policy["support"] == (len([i for i in deleted if "-support-" in i and not i.startswith("team-a")]), 0)
    # Batches of at most 4 traces: one statement per batch, so more statements than a single pass would take.
    assert len(statements) >= (len(deleted) + len(cleared)) // 4
    # Rollups are aggregates: spend totals are unchanged, and a rebuild (from the days all of whose traces
    # are still stored) keeps them.
    assert spend(database) == before
    rebuild(database)
    assert spend(database) == before
    # A cleared trace is no longer found by the words of its bodies, a kept one is.
    store = SQLTraceStore(database)
    found = {r.id for r in store.query(TraceQuery(q="invoices", limit=1000)).records}
    assert found == {i for i in kept if i not in cleared}
    again = prune(database, GLOBAL_RETENTION, now=NOW, stored=POLICIES, batch=4)
    assert (again.traces, again.bodies) == (0, 0)


def test_a_released_trace_is_expired_at_the_next_run(database: Database) -> None:
    old = record("team-b", "chat", 40, 0)
    SQLTraceStore(database).insert([old])
    set_hold(database, old.id, True)
    assert prune(database, GLOBAL_RETENTION, now=NOW).traces == 0
    assert set_hold(database, old.id, False) is True
    assert prune(database, GLOBAL_RETENTION, now=NOW).traces == 1
    assert stored(database) == {}


def test_stored_policies_replace_configured_ones_by_name_and_scope(database: Database) -> None:
    store = RetentionPolicyStore(database)
    assert store.save(RetentionPolicySpec(name="a", team="team-a", trace_days=5), actor="key:admin") is None
    replaced = store.save(RetentionPolicySpec(name="a", team="team-a", trace_days=2), actor="key:admin")
    assert replaced is not None and replaced.trace_days == 5
    with pytest.raises(ValueError, match="already covers team team-a"):
        store.save(RetentionPolicySpec(name="other", team="team-a", body_days=1), actor="key:admin")
    configured = Retention(
        raw_days=30,
        minute_days=None,
        rollup_days=None,
        policies=(RetentionPolicySpec(name="config-a", team="team-a", trace_days=20),),
    )
    SQLTraceStore(database).insert([record("team-a", "chat", 10, 0), record("team-b", "chat", 10, 0)])
    # The stored policy "a" (2 days) covers team-a, not the configured one of the same scope (20 days).
    pruned = prune(database, configured, now=NOW, stored=store.list())
    assert [e.policy for e in pruned.by_policy] == ["a", GLOBAL]
    assert set(stored(database)) == {"team-b-chat-10-0"}
    assert store.delete("a") is not None and store.delete("a") is None
    assert store.list() == []


def test_a_policy_names_a_scope_and_something_to_keep() -> None:
    with pytest.raises(ValueError, match="neither `team` nor `route`"):
        RetentionPolicySpec(name="x", body_days=1)
    with pytest.raises(ValueError, match="neither `body_days` nor `trace_days`"):
        RetentionPolicySpec(name="x", team="t")
    with pytest.raises(ValueError, match="a body goes with its trace"):
        RetentionPolicySpec(name="x", team="t", body_days=10, trace_days=5)


def test_the_hold_column_is_there_after_the_migrations(database: Database) -> None:
    with database.engine.connect() as conn:
        assert conn.execute(text("SELECT COUNT(*) FROM traces WHERE legal_hold")).scalar_one() == 0

"""Annotation queues in the store: rules fill them, claims hold an item for one reviewer at a time (also
when many race for it), a label is written once, and a lost claim cannot label."""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import text

from lmdeck.db import Database
from lmdeck.db.scratch import scratch_database
from lmdeck.evaluation.annotation.feeder import AnnotationFeeder
from lmdeck.evaluation.annotation.store import AnnotationStore, LabelRefused
from lmdeck.policy.ownership import Owner
from lmdeck.protocol.annotation import AnnotationQueueSpec, LabelRequest, QueueRule
from lmdeck.protocol.evaluation import TraceFilter
from lmdeck.protocol.traces import TraceRecord
from lmdeck.tracing.sql_store import SQLTraceStore

T0 = 1_800_000_000.0


def trace(n: int, team: str | None, *, route: str = "support", status: int = 200, **fields: object) -> TraceRecord:
    return TraceRecord(
        id=f"tr{n:04d}",
        created_at=T0 + n,
        team_id=team,
        route=route,
        status_code=status,
        **fields,  # type: ignore[arg-type]
    )


def queue(name: str, rule: QueueRule | None = None, **fields: object) -> AnnotationQueueSpec:
    return AnnotationQueueSpec(name=name, rule=rule, **fields)  # type: ignore[arg-type]


def test_a_trace_rule_sends_its_teams_matching_traces_once(database: Database) -> None:
    store = AnnotationStore(database)
    rule = QueueRule(filter=TraceFilter(route="support", status="error"))
    store.save_queue(queue("errors", rule), Owner("team-a"), "key:k", watermark=T0)
    flagged = QueueRule(guardrail=True)
    store.save_queue(queue("flagged", flagged), Owner("team-a"), "key:k", watermark=T0)
    SQLTraceStore(database).insert(
        [
            trace(1, "team-a", status=500),
            trace(2, "team-a"),  # ok: not an error
            trace(3, "team-b", status=500),  # another team's
            trace(4, "team-a", route="chat", status=502),  # another route
            trace(5, "team-a", metadata={"guardrail_actions": [{"guardrail": "pii", "action": "redact"}]}),
            trace(30, "team-a", status=500),  # not settled yet at the first tick
        ]
    )
    feeder = AnnotationFeeder(store, settle_s=10.0)
    assert feeder.tick(now=T0 + 35) == {"errors": 1, "flagged": 1}
    assert [i.trace_id for i in store.items("errors")] == ["tr0001"]
    assert [i.trace_id for i in store.items("flagged")] == ["tr0005"]
    assert feeder.tick(now=T0 + 35) == {"errors": 0, "flagged": 0}  # the watermark moved
    assert feeder.tick(now=T0 + 100) == {"errors": 1, "flagged": 0}
    assert [i.trace_id for i in store.items("errors")] == ["tr0001", "tr0030"]
    # By hand: a trace already queued is not queued twice.
    assert store.add_items("errors", [("tr0001", "team-a"), ("tr0002", "team-a")], source="manual") == ["tr0002"]


def test_feedback_and_score_rules_send_traces_scored_under_the_threshold(database: Database) -> None:
    store = AnnotationStore(database)
    store.save_queue(
        queue("low-thumbs", QueueRule(feedback_below={"name": "thumbs", "value": 0.5})),  # type: ignore[arg-type]
        Owner("team-a"),
        "key:k",
        watermark=T0,
    )
    store.save_queue(
        queue("low-relevance", QueueRule(score_below={"evaluator": "relevance", "value": 0.3}, sample_rate=1.0)),  # type: ignore[arg-type]
        Owner("team-a"),
        "key:k",
        watermark=T0,
    )
    SQLTraceStore(database).insert([trace(n, "team-a" if n != 3 else "team-b") for n in range(1, 5)])
    with database.engine.begin() as conn:
        for n, (name, value) in enumerate([("thumbs", 0.0), ("thumbs", 1.0), ("thumbs", 0.0), ("stars", 0.0)], 1):
            conn.execute(
                text(
                    "INSERT INTO eval_feedback (id, trace_id, name, value, source, created_at) "
                    "VALUES (:id, :tr, :n, :v, 'api', :t)"
                ),
                {"id": f"fb{n}", "tr": f"tr{n:04d}", "n": name, "v": value, "t": T0 + 5},
            )
        for n, value in ((2, 0.1), (4, 0.9)):
            conn.execute(
                text(
                    "INSERT INTO eval_trace_scores (id, trace_id, rule, evaluator, value, created_at) "
                    "VALUES (:id, :tr, 'r', 'relevance', :v, :t)"
                ),
                {"id": f"sc{n}", "tr": f"tr{n:04d}", "v": value, "t": T0 + 5},
            )
    assert AnnotationFeeder(store, settle_s=0).tick(now=T0 + 10) == {"low-thumbs": 1, "low-relevance": 1}
    assert [i.trace_id for i in store.items("low-thumbs")] == ["tr0001"]  # tr0003 is team-b's
    assert [i.trace_id for i in store.items("low-relevance")] == ["tr0002"]


def test_a_label_needs_the_claim_and_is_written_once(database: Database) -> None:
    store = AnnotationStore(database)
    store.save_queue(queue("q"), Owner("team-a"), "key:k", watermark=T0)
    store.add_items("q", [("tr1", "team-a"), ("tr2", "team-a")], source="manual")
    first = store.claim("q", reviewer="key:r1", lease_s=60, now=T0)
    second = store.claim("q", reviewer="key:r2", lease_s=60, now=T0)
    assert first is not None and second is not None and first.id != second.id
    assert store.claim("q", reviewer="key:r3", lease_s=60, now=T0 + 1) is None  # both held
    # r1's lease runs out: r3 takes the item over, and r1's claim no longer labels it.
    taken = store.claim("q", reviewer="key:r3", lease_s=60, now=T0 + 61)
    assert taken is not None and taken.id == first.id and taken.claim_token != first.claim_token
    with pytest.raises(LabelRefused) as lost:
        store.label(
            "q", first.id, first.claim_token or "", LabelRequest(claim="x", score=1.0), author="r1", now=T0 + 62
        )
    assert lost.value.code == "claim_lost"
    done = store.label(
        "q",
        taken.id,
        taken.claim_token or "",
        LabelRequest(claim="x", score=0.0, correction="fixed"),
        author="r3",
        now=T0 + 62,
    )
    assert done.status == "labelled" and done.label is not None and done.label["correction"] == "fixed"
    with pytest.raises(LabelRefused) as twice:
        store.label(
            "q", taken.id, taken.claim_token or "", LabelRequest(claim="x", score=1.0), author="r3", now=T0 + 63
        )
    assert twice.value.code == "already_labelled"
    assert store.counts("q") == {"pending": 0, "claimed": 1, "labelled": 1}
    assert store.corrections("q") == [
        (taken.id, taken.trace_id, "fixed", {"score": 0.0, "category": None, "author": "r3"})
    ]


@pytest.fixture(params=["sqlite-file", "postgresql"])
def shared_db(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Database]:
    """A store many threads write at once: a SQLite file (in-memory SQLite is one connection) or PostgreSQL."""
    if request.param == "sqlite-file":
        db = Database(f"sqlite:///{tmp_path / 'queues.db'}")
        db.migrate()
        yield db
        db.dispose()
        return
    server = os.environ.get("LMDECK_TEST_POSTGRES_URL")
    if not server:
        pytest.skip("set LMDECK_TEST_POSTGRES_URL (scripts/test-services.sh does) to test on PostgreSQL")
    with scratch_database(server) as url:
        db = Database(url)
        db.migrate()
        yield db
        db.dispose()


def test_reviewers_racing_for_items_each_get_different_ones(shared_db: Database) -> None:
    store = AnnotationStore(shared_db)
    store.save_queue(queue("race"), Owner(None), "key:k", watermark=T0)
    store.add_items("race", [(f"tr{n}", None) for n in range(60)], source="manual")
    claimed: dict[str, list[str]] = {}
    barrier = threading.Barrier(6)

    def reviewer(name: str) -> None:
        mine = claimed.setdefault(name, [])
        barrier.wait()
        while (item := store.claim("race", reviewer=name, lease_s=600, now=T0)) is not None:
            mine.append(item.id)

    threads = [threading.Thread(target=reviewer, args=(f"r{i}",)) for i in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    every = [item for items in claimed.values() for item in items]
    assert len(every) == 60 and len(set(every)) == 60  # each item held by exactly one reviewer
    assert store.counts("race") == {"pending": 0, "claimed": 60, "labelled": 0}


def test_holding_names_the_queues_of_a_trace_with_its_status_there(database: Database) -> None:
    store = AnnotationStore(database)
    for name in ("second", "first"):
        store.save_queue(queue(name), Owner("team-a"), "key:k", watermark=T0)
    store.add_items("second", [("tr0001", "team-a")], source="manual", reason=None)
    store.add_items("first", [("tr0001", "team-a"), ("tr0002", "team-a")], source="manual", reason=None)
    assert store.holding("tr0001") == [("first", "pending"), ("second", "pending")]
    assert store.holding("tr0002") == [("first", "pending")]
    assert store.holding("tr0003") == []

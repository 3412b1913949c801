"""Training the learned router: labels from feedback and cascade decisions, held-out accuracy, cost saving."""

from __future__ import annotations

from pathlib import Path

import pytest

from lmdeck.db import Database
from lmdeck.evaluation.feedback.store import FeedbackEntry, FeedbackStore
from lmdeck.evaluation.router_training import TrainingError, collect, fit
from lmdeck.gateway.routing.learned import TrainedRouter
from lmdeck.protocol.traces import TraceRecord
from lmdeck.tracing.sql_store import SQLTraceStore

TARGETS = ["local:demo", "openai:big"]


@pytest.fixture
def db(tmp_path: Path) -> Database:
    database = Database(f"sqlite:///{tmp_path / 'lmdeck.db'}")
    database.migrate()
    return database


def features(texts: list[str]) -> list[list[float]]:
    """A FAKE embedding: does the text hold a digit, and is it long."""
    return [[1.0 if any(c.isdigit() for c in t) else 0.0, 1.0 if len(t) > 30 else 0.0] for t in texts]


def trace(text: str, target: str, *, escalated: bool = False, cost: int = 0, status: int = 200) -> TraceRecord:
    metadata = {}
    if escalated:
        metadata["routing"] = {
            "strategy": "cascade",
            "tier": 1,
            "tiers": [{"target": TARGETS[0], "outcome": "escalated", "reason": "low logprob"}],
        }
    return TraceRecord(
        route="smart",
        target=target,
        status_code=status,
        cost_micros=cost,
        metadata=metadata,
        request_body={"model": "smart", "messages": [{"role": "user", "content": text}]},
    )


def store_traces(db: Database, rated: list[tuple[TraceRecord, float | None]]) -> None:
    SQLTraceStore(db).insert([r for r, _ in rated])
    feedback = FeedbackStore(db)
    for record, value in rated:
        if value is not None:
            entry = FeedbackEntry(
                record.id, "thumbs", value, None, None, "user", None, "smart", None, None, None, None, None
            )
            feedback.add(entry)


def workload() -> list[tuple[TraceRecord, float | None]]:
    rated: list[tuple[TraceRecord, float | None]] = []
    for i in range(20):
        rated.append((trace(f"What is {i}+{i}?", TARGETS[0]), 1.0))  # small and right: tier 0
    for i in range(10):
        rated.append((trace(f"Tell me everything about the topic number {'x' * i}", TARGETS[0]), 0.0))  # small, wrong
        text = f"Write an essay about the history of {'y' * i} please"
        rated.append((trace(text, TARGETS[1], escalated=True, cost=2000), 1.0))  # escalated, right
    rated.append((trace("What is 1+1?", TARGETS[1], cost=2000), 1.0))  # large, cheaper tier untried: unknown
    rated.append((trace("What is 2+2?", TARGETS[0], status=502), 1.0))
    rated.append((trace("What is 3+3?", TARGETS[0]), None))
    return rated


def test_labels_come_from_feedback_and_cascade_decisions(db: Database) -> None:
    store_traces(db, workload())
    examples, skipped = collect(db, "smart", TARGETS, feedback="thumbs")
    tiers = sorted(e.tier for e in examples)
    assert tiers.count(0) == 20 and tiers.count(1) == 20
    assert skipped == {
        "good answer from a costlier tier, cheaper ones untried": 1,
        "failed": 1,
        "no feedback or score": 1,
    }


def test_the_router_is_measured_on_held_out_traces_and_reports_the_saving(db: Database) -> None:
    store_traces(db, workload())
    examples, skipped = collect(db, "smart", TARGETS, feedback="thumbs")
    router, report = fit("smart", TARGETS, examples, features, skipped=skipped, test_share=0.25)
    assert (report.train, report.test) == (30, 10)
    assert report.accuracy == 1.0 and report.baseline_accuracy == 0.5
    assert report.routed_share == {0: 0.5, 1: 0.5} and report.under_routed_share == 0.0
    assert report.mean_cost_usd == {0: 0.0, 1: 0.002}
    assert report.expected_cost_saving == 0.5
    assert router.suffices([1.0, 0.0], 2)[0] > 0.5 > router.suffices([0.0, 1.0], 2)[0]


def test_the_router_file_round_trips(db: Database, tmp_path: Path) -> None:
    store_traces(db, workload())
    examples, _ = collect(db, "smart", TARGETS, feedback="thumbs")
    router, _ = fit("smart", TARGETS, examples, features)
    path = tmp_path / "smart.json"
    path.write_bytes(router.to_json())
    loaded = TrainedRouter.load(path)
    assert loaded.suffices([1.0, 0.0], 2) == pytest.approx(router.suffices([1.0, 0.0], 2))
    assert loaded.metrics["accuracy"] == router.metrics["accuracy"]


def test_one_tier_only_cannot_train_a_router(db: Database) -> None:
    store_traces(db, [(trace(f"What is {i}+1?", TARGETS[0]), 1.0) for i in range(12)])
    examples, _ = collect(db, "smart", TARGETS, feedback="thumbs")
    with pytest.raises(TrainingError, match="at least two tiers"):
        fit("smart", TARGETS, examples, features)


def test_a_quality_signal_must_be_named(db: Database) -> None:
    with pytest.raises(TrainingError, match="--feedback NAME or --score EVALUATOR"):
        collect(db, "smart", TARGETS)

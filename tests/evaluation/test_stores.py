"""The evaluation tables on SQLite always, and on PostgreSQL when LMDECK_TEST_POSTGRES_URL is set."""

from __future__ import annotations

import pytest

from lmdeck.db import Database
from lmdeck.evaluation.experiments.store import ExperimentStore, Exposure
from lmdeck.evaluation.feedback.store import FeedbackEntry, FeedbackStore
from lmdeck.evaluation.online.store import OnlineStore, TraceScore
from lmdeck.evaluation.runs.store import RunRecord, RunStore
from lmdeck.pipeline.principal import Principal
from lmdeck.policy.ownership import Owner, visible_condition, visible_params
from lmdeck.protocol.evaluation import ExperimentSpec, OnlineRule, RowResult


@pytest.fixture
def db(database: Database) -> Database:
    return database


def test_runs(db: Database) -> None:
    store = RunStore(db)
    mine = RunRecord.new(
        spec={"evaluators": ["exact"]}, dataset="d", dataset_version=1, dataset_digest="x", row_count=2, team_id="t1"
    )
    other = RunRecord.new(spec={}, dataset="d", dataset_version=1, dataset_digest="x", row_count=1)
    store.create(mine)
    store.create(other)
    rows = [
        RowResult(idx=i, input={"a": i}, expected="1", output="1", scores={"exact": {"value": 1.0}}, cost=0.5)
        for i in range(2)
    ]
    store.add_results(mine.id, rows, completed=2)
    store.finish(mine.id, "succeeded", {"rows": 2})
    found = store.get(mine.id)
    assert found is not None and found.status == "succeeded" and found.completed == 2 and found.summary == {"rows": 2}
    assert [r.input for r in store.results(mine.id)] == [{"a": 0}, {"a": 1}]
    member, teamless = Principal(key_id="k", role="viewer", team_id="t1"), Principal(key_id="k", role="viewer")
    for principal, expected in ((member, [mine.id]), (teamless, [other.id])):
        where, params = visible_condition(principal), visible_params(principal)
        assert [r.id for r in store.recent(where=where, params=params)] == expected
    store.set_owner(mine.id, Owner("t1", "shared"))
    where, params = visible_condition(teamless), visible_params(teamless)
    assert {r.id for r in store.recent(where=where, params=params)} == {mine.id, other.id}
    assert store.fail_unfinished("stopped") == 1
    assert store.get(other.id).status == "failed"  # type: ignore[union-attr]


def test_feedback(db: Database) -> None:
    store = FeedbackStore(db)
    for team, value in (("t1", 1.0), ("t1", 0.0), (None, 1.0)):
        store.add(FeedbackEntry("tr1", "thumbs", value, None, None, "user", "key:k", "demo", "p", 2, "m", team, "k"))
    assert len(store.find(trace_id="tr1")) == 3
    assert len(store.find(team_id="t1", all_teams=False)) == 2
    assert len(store.find(team_id=None, all_teams=False)) == 1
    (row,) = store.summary("prompt", team_id="t1", all_teams=False)
    assert (
        row["prompt"] == "p" and row["prompt_version"] == 2 and row["count"] == 2 and row["mean"] == pytest.approx(0.5)
    )


def test_online(db: Database) -> None:
    store = OnlineStore(db)
    rule = OnlineRule(name="r", sample_rate=0.5, evaluators=["json_valid"])
    assert store.save_rule(rule, "key:a") is True
    assert store.save_rule(rule.model_copy(update={"sample_rate": 0.2}), "key:a") is False
    assert [r.sample_rate for r in store.rules()] == [0.2]
    store.add_scores(
        [
            TraceScore("t1", "r", "json_valid", 1.0, "valid", "", route="demo", team_id="x"),
            TraceScore("t2", "r", "json_valid", 0.0, "invalid", "", route="demo", team_id="x"),
            TraceScore("t3", "r", "json_valid", None, "unparsed", "", route="demo"),
        ]
    )
    assert {s.trace_id for s in store.scores(team_id="x", all_teams=False)} == {"t1", "t2"}
    assert [s.trace_id for s in store.scores(trace_id="t3")] == ["t3"]
    (summary,) = store.summary()
    assert summary["count"] == 2 and summary["mean"] == pytest.approx(0.5)
    assert store.delete_rule("r") and not store.delete_rule("r")


def test_experiments_and_exposures(db: Database) -> None:
    store = ExperimentStore(db)
    spec = ExperimentSpec.model_validate(
        {"name": "e", "route": "demo", "variants": [{"name": "a", "weight": 1}, {"name": "b", "weight": 1}]}
    )
    store.create(spec, "key:a")
    exposures = [
        Exposure(f"t{i}", "e", "ab"[i % 2], None, 500 if i == 3 else 200, 10.0 + i, 0.01, 0.0) for i in range(6)
    ]
    store.add_exposures(exposures)
    store.add_exposures(exposures[:2])  # replayed: ignored
    OnlineStore(db).add_scores(
        [TraceScore("t1", "r", "exact", 1.0, None, ""), TraceScore("t3", "r", "exact", 0.0, None, "")]
    )
    FeedbackStore(db).add(
        FeedbackEntry("t0", "thumbs", 1.0, None, None, "user", None, None, None, None, None, None, None)
    )
    totals = store.totals("e")
    assert (totals["a"].requests, totals["b"].requests, totals["b"].errors) == (3, 3, 1)
    assert totals["b"].latency.mean == pytest.approx(13.0)
    assert totals["b"].scores["exact"].n == 2 and totals["b"].scores["exact"].mean == pytest.approx(0.5)  # type: ignore[index]
    assert totals["a"].feedback["thumbs"].n == 1  # type: ignore[index]
    store.stop("e", {"promoted": "b"})
    (record,) = store.all()
    assert record.status == "stopped" and record.outcome == {"promoted": "b"} and store.all("running") == []


def test_experiment_totals_keep_the_variance_of_values_far_from_zero(db: Database) -> None:
    """Latencies of 1e9 ± 1 ms: a sum of squares minus a squared sum would cancel the variance away."""
    store = ExperimentStore(db)
    spec = ExperimentSpec.model_validate(
        {"name": "big", "route": "demo", "variants": [{"name": "a", "weight": 1}, {"name": "b", "weight": 1}]}
    )
    store.create(spec, "key:a")
    store.add_exposures(
        [Exposure(f"big{i}", "big", "a", None, 200, 1e9 + (1.0 if i % 2 else -1.0), 0.0, 0.0) for i in range(40)]
    )
    totals = store.totals("big")
    latency = totals["a"].latency
    assert latency.n == 40 and latency.mean == pytest.approx(1e9)
    assert latency.variance == pytest.approx(40 / 39, rel=1e-6)


def test_a_fixed_horizon_counts_only_each_variants_first_observations(db: Database) -> None:
    store = ExperimentStore(db)
    spec = ExperimentSpec.model_validate(
        {
            "name": "fixed",
            "route": "demo",
            "design": "fixed_horizon",
            "sample_size": 3,
            "variants": [{"name": "a", "weight": 1}, {"name": "b", "weight": 1}],
        }
    )
    store.create(spec, "key:a")
    # Variant a: three successes first, then failures that arrive after the horizon.
    store.add_exposures(
        [Exposure(f"f{i}", "fixed", "a", None, 200 if i < 3 else 500, float(i), 0.0, float(i)) for i in range(6)]
    )
    OnlineStore(db).add_scores([TraceScore(f"f{i}", "r", "exact", float(i < 3), None, "") for i in range(6)])
    first = store.totals("fixed", horizon=3)["a"]
    assert (first.requests, first.errors, first.latency.mean) == (3, 0, pytest.approx(1.0))
    assert first.scores["exact"].n == 3 and first.scores["exact"].mean == 1.0  # type: ignore[index]
    everything = store.totals("fixed")["a"]
    assert (everything.requests, everything.errors) == (6, 3)
    assert everything.scores["exact"].mean == pytest.approx(0.5)  # type: ignore[index]

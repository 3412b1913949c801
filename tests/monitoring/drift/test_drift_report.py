"""Drift reports over synthetic traces of the demo model's skills, written to the store."""

from __future__ import annotations

import pytest

from lmdeck.db import Database
from lmdeck.local.skills import TRAINING_MIX
from lmdeck.monitoring.drift import DriftMonitor, DriftOptions, DriftScope, Windows
from lmdeck.monitoring.drift.embedder import PromptEmbedder
from lmdeck.testing.skill_traffic import skill_traces
from lmdeck.tracing.sql_store import SQLTraceStore

DAY = 86400.0
NOW = 1_800_000_000.0
#: Prompts per window: enough that a skill change is beyond doubt, few enough to embed in about a second.
PER_WINDOW = 60


def _windows() -> Windows:
    return Windows.trailing(reference="7d", current="1d", until=NOW)


def _write(database: Database, reference_mix: dict[str, float], current_mix: dict[str, float], **kw: object) -> None:
    windows = _windows()
    store = SQLTraceStore(database)
    store.insert(
        skill_traces(
            "demo",
            reference_mix,
            PER_WINDOW,
            since=windows.reference.since,
            until=windows.reference.until,
            seed=11,
            **kw,
        )  # type: ignore[arg-type]
    )
    store.insert(
        skill_traces(
            "demo", current_mix, PER_WINDOW, since=windows.current.since, until=windows.current.until, seed=12, **kw
        )  # type: ignore[arg-type]
    )


def test_drift_detected_when_the_input_mix_moves_from_one_skill_to_another(
    database: Database, embedder: PromptEmbedder
) -> None:
    _write(database, {"add": 1.0}, {"reverse": 1.0})
    report = DriftMonitor(database, embed=embedder).report(DriftScope(route="demo", windows=_windows()))
    tests = {t.name: t for t in report.tests}
    assert tests["input_mmd"].p_value is not None and tests["input_mmd"].p_value < 0.01
    assert tests["input_mmd"].drift
    assert report.verdict == "drift" and report.p_value is not None and report.p_value < 0.01
    # The answers moved too: sums' worked form ("8+7=15, ... so 85") against reversed words.
    assert tests["output_length"].drift and tests["output_centroid"].drift
    assert report.reference.total == report.current.total == PER_WINDOW
    # The new cluster is the reversals, none of which the reference window had.
    top = report.clusters[0]
    assert top.novel and top.reference == 0 and top.current > 0
    assert top.examples and all(e.text is not None and e.text.startswith("Reverse") for e in top.examples)


def test_no_drift_between_two_samples_of_the_same_mix(database: Database, embedder: PromptEmbedder) -> None:
    # Seeds are fixed (traffic, permutations, k-means), so the p-values are too: input_mmd measured
    # 0.986, far from 0.01. Over 400 seeded pairs of such windows it fell under 0.01 in 1.75% of them
    # (docs/benchmarks.md#drift): the level, within sampling error; this pair is not near the edge.
    _write(database, TRAINING_MIX, TRAINING_MIX)
    report = DriftMonitor(database, embed=embedder).report(DriftScope(route="demo", windows=_windows()))
    tests = {t.name: t for t in report.tests}
    assert tests["input_mmd"].p_value is not None and tests["input_mmd"].p_value > 0.01
    assert report.verdict == "no_drift"
    assert not any(t.drift for t in report.tests)


def test_report_is_bounded_by_max_samples_and_says_so(database: Database, embedder: PromptEmbedder) -> None:
    _write(database, {"add": 1.0}, {"add": 0.5, "upper": 0.5})
    scope = DriftScope(route="demo", windows=_windows(), max_samples=40)
    report = DriftMonitor(database, embed=None).report(scope)
    assert report.reference.sampled == report.current.sampled == 40
    assert report.reference.total == report.current.total == PER_WINDOW
    assert any("at most 40 traces" in note for note in report.notes)
    # The same window gives the same sample: the report is reproducible.
    again = DriftMonitor(database, embed=None).report(scope)
    assert [t.p_value for t in again.tests] == [t.p_value for t in report.tests]
    assert next(t for t in report.tests if t.name == "input_mmd").skipped.startswith("no embedding model")


def test_too_few_traces_is_insufficient_data_not_a_verdict(database: Database) -> None:
    windows = _windows()
    SQLTraceStore(database).insert(
        skill_traces("demo", {"add": 1.0}, 5, since=windows.current.since, until=windows.current.until, seed=3)
    )
    report = DriftMonitor(database, embed=None).report(DriftScope(route="demo", windows=windows))
    assert report.verdict == "insufficient_data" and report.p_value is None
    skipped = {t.name: t.skipped for t in report.tests}
    assert all(skipped.values()) and "widen the windows" in (skipped["output_length"] or "")
    assert (skipped["evaluator_scores"] or "").startswith("no online evaluator scored this route")


def test_refusal_rate_drift_and_team_scope(database: Database) -> None:
    windows = _windows()
    store = SQLTraceStore(database)
    mix = {"capital": 1.0}
    store.insert(
        skill_traces(
            "demo", mix, 100, since=windows.reference.since, until=windows.reference.until, seed=1, team_id="team-a"
        )
    )
    refusal = "I'm sorry, I can't help with that."
    store.insert(
        skill_traces(
            "demo",
            mix,
            100,
            since=windows.current.since,
            until=windows.current.until,
            seed=2,
            team_id="team-a",
            answer=refusal,
        )
    )
    # Another team's traffic is unchanged in both windows.
    store.insert(
        skill_traces(
            "demo", mix, 100, since=windows.reference.since, until=windows.reference.until, seed=3, team_id="team-b"
        )
    )
    store.insert(
        skill_traces(
            "demo", mix, 100, since=windows.current.since, until=windows.current.until, seed=4, team_id="team-b"
        )
    )
    options = DriftOptions(tests=("refusal_rate",))
    monitor = DriftMonitor(database, embed=None)
    team_a = monitor.report(DriftScope(route="demo", windows=windows, team_id="team-a", all_teams=False), options)
    rate = team_a.tests[0]
    assert rate.drift and rate.detail == {"rate_reference": 0.0, "rate_current": 1.0}
    team_b = monitor.report(DriftScope(route="demo", windows=windows, team_id="team-b", all_teams=False), options)
    assert team_b.verdict == "no_drift" and team_b.current.total == 100


def test_evaluator_scores_drift(database: Database) -> None:
    from lmdeck.evaluation.online.store import OnlineStore, TraceScore

    windows = _windows()
    scores = [
        TraceScore(
            trace_id=f"t{i}",
            rule="r",
            evaluator="exact",
            value=1.0 if i % 10 else 0.0,
            label=None,
            explanation="",
            route="demo",
            created_at=windows.reference.since + i * 60,
        )
        for i in range(60)
    ] + [
        TraceScore(
            trace_id=f"u{i}",
            rule="r",
            evaluator="exact",
            value=1.0 if i % 2 else 0.0,
            label=None,
            explanation="",
            route="demo",
            created_at=windows.current.since + i * 60,
        )
        for i in range(60)
    ]
    OnlineStore(database).add_scores(scores)
    report = DriftMonitor(database, embed=None).report(
        DriftScope(route="demo", windows=windows), DriftOptions(tests=("evaluator_scores",))
    )
    (result,) = report.tests
    assert result.name == "evaluator_scores:exact" and result.drift
    assert result.detail == {"mean_reference": 0.9, "mean_current": 0.5}


def test_drift_p_value_is_the_reports_p_value(database: Database) -> None:
    _write(database, {"add": 1.0}, {"extract": 1.0})  # answers three times as long
    monitor = DriftMonitor(database, embed=None)
    p = monitor.drift_p_value("demo", "7d", "1d", now=NOW)
    assert p is not None and p < 0.01
    assert p == monitor.report(DriftScope(route="demo", windows=_windows())).p_value
    assert monitor.drift_p_value("other", "7d", "1d", now=NOW) is None


def test_unknown_test_name_says_which_exist(database: Database) -> None:
    with pytest.raises(KeyError, match="input_mmd"):
        DriftMonitor(database, embed=None).report(
            DriftScope(route="demo", windows=_windows()), DriftOptions(tests=("nope",))
        )

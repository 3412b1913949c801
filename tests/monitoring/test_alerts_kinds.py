"""Rule kinds other than plain thresholds: burn rate, budget forecast, anomaly; and the metrics they read."""

from __future__ import annotations

import pytest

from lmdeck.db import Database
from lmdeck.monitoring.anomaly.base import load_detectors
from lmdeck.monitoring.conditions.budget_forecast import period_bounds
from lmdeck.protocol.alerts import METRICS, AlertRuleSpec
from lmdeck.tracing.signal_metrics import METRIC_NAMES, metric_value
from lmdeck.tracing.signals import Signals

from .alerting import T0, Clock, Recorder, build_runtime, traffic


def test_every_metric_a_rule_may_name_is_computed() -> None:
    assert set(METRICS) == set(METRIC_NAMES)


def test_signal_metrics_read_the_rollups(database: Database) -> None:
    traffic(database, T0, ok=3, failed=1, cache_hit=True, cost_micros=500)
    totals = Signals(database, minute_days=None).totals(since=T0, until=T0 + 60, quantiles=(0.5,))[0]
    assert metric_value(totals, "error_rate", 60) == 0.25
    assert metric_value(totals, "request_rate", 60) == pytest.approx(4 / 60)
    assert metric_value(totals, "cache_hit_rate", 60) == 1.0
    assert metric_value(totals, "mean_output_tokens", 60) == 10.0
    assert metric_value(totals, "cost_per_hour", 60) == pytest.approx(2000 * 60)
    assert metric_value(totals, "latency_p50", 60) == pytest.approx(100.0, rel=0.02)


async def test_burn_rate_fires_when_both_windows_burn_and_resolves_with_the_short_one(database: Database) -> None:
    recorder = Recorder()
    runtime = build_runtime(database, recorder, Clock())
    rule = AlertRuleSpec.model_validate(
        {
            "name": "slo",
            "kind": "burn_rate",
            "signal": {"metric": "error_rate", "where": {"route": "chat"}},
            "burn_rate": {"objective": 0.99, "long_window_s": 3600, "short_window_s": 300, "factor": 10},
            "channels": ["rec"],
        }
    )
    runtime.config.put_rule(rule, actor="test")
    traffic(database, T0, ok=900)
    traffic(database, T0 + 3000, ok=80, failed=20)  # long: 20/1000 = 2x budget; short: 20/100 = 20x
    assert (await runtime.run_once(T0 + 3100)).fired == []
    traffic(database, T0 + 3200, failed=200)  # long: 220/1200 = 18x, short: 220/300 = 73x
    assert len((await runtime.run_once(T0 + 3300)).fired) == 1
    traffic(database, T0 + 3700, ok=3000)  # the short window recovers: 0 errors in the last 300 s
    assert len((await runtime.run_once(T0 + 3900)).resolved) == 1
    assert recorder.events() == ["firing", "resolved"]


def test_budget_periods_are_utc_calendar_periods() -> None:
    start, end = period_bounds(1_780_000_000.0, "month")  # 2026-05-28
    assert (start, end) == (1_777_593_600.0, 1_780_272_000.0)
    start, end = period_bounds(1_780_000_000.0, "week")
    assert end - start == 7 * 86400


async def test_budget_forecast_fires_on_the_current_rate(database: Database) -> None:
    recorder = Recorder()
    runtime = build_runtime(database, recorder, Clock())
    start, _ = period_bounds(T0, "day")
    rule = AlertRuleSpec.model_validate(
        {
            "name": "spend",
            "kind": "budget_forecast",
            "signal": {"metric": "cost_per_hour", "by": ["team_id"]},
            "budget": {"budget_usd": 10.0, "period": "day", "lookback_s": 3600},
            "channels": ["rec"],
        }
    )
    runtime.config.put_rule(rule, actor="test")
    now = start + 12 * 3600
    # $1 in the last hour: $1 + $1/h * 12 h = $13 > $10 for team a; team b spent $1 early and nothing since.
    traffic(database, now - 1800, ok=10, cost_micros=100_000, team_id="a")
    traffic(database, start + 60, ok=10, cost_micros=100_000, team_id="b")
    report = await runtime.run_once(now)
    assert [i.labels["team_id"] for i, _ in report.fired] == ["a"]
    assert report.fired[0][0].value == pytest.approx(13.0, rel=0.01)
    assert "exceeds the budget $10.00" in report.fired[0][0].summary


async def test_anomaly_rules_call_the_registered_detector_on_whole_steps(database: Database) -> None:
    recorder = Recorder()
    runtime = build_runtime(database, recorder, Clock())
    rule = AlertRuleSpec.model_validate(
        {
            "name": "traffic-spike",
            "kind": "anomaly",
            "signal": {"metric": "requests", "where": {"route": "chat"}},
            "anomaly": {"detector": "above_median", "step_s": 300, "history_s": 7200, "options": {"factor": 3}},
            "channels": ["rec"],
        }
    )
    runtime.config.put_rule(rule, actor="test")
    for step in range(10):
        traffic(database, T0 + step * 300, ok=10)
    assert (await runtime.run_once(T0 + 3000 + 10)).fired == []
    traffic(database, T0 + 3000, ok=100)  # the step [3000, 3300) has 10x the usual traffic
    assert (await runtime.run_once(T0 + 3200)).fired == []  # that step is not whole yet
    fired = (await runtime.run_once(T0 + 3300)).fired
    assert len(fired) == 1
    finding = fired[0][0].evidence["reading"]["finding"] if fired[0][0].evidence else {}
    assert finding["anomalous"] and finding["expected"] == 10.0


async def test_an_unknown_detector_is_reported_per_rule_without_stopping_the_others(database: Database) -> None:
    recorder = Recorder()
    runtime = build_runtime(database, recorder, Clock())
    broken = AlertRuleSpec.model_validate(
        {"name": "broken", "kind": "anomaly", "signal": {"metric": "requests"}, "anomaly": {"detector": "nope"}}
    )
    runtime.config.put_rule(broken, actor="test")
    report = await runtime.run_once(T0)
    assert "unknown anomaly detector 'nope'" in report.errors["broken"]
    assert "above_median" in runtime.status()["rule_errors"]["broken"]


async def test_an_anomaly_rule_with_a_built_in_detector_fires_on_a_spike(database: Database) -> None:
    recorder = Recorder()
    runtime = build_runtime(database, recorder, Clock(), detectors=load_detectors())
    rule = AlertRuleSpec.model_validate(
        {
            "name": "traffic-spike",
            "kind": "anomaly",
            "signal": {"metric": "requests", "where": {"route": "chat"}},
            "anomaly": {"detector": "mad", "step_s": 300, "history_s": 86400, "options": {"direction": "up"}},
            "channels": ["rec"],
        }
    )
    runtime.config.put_rule(rule, actor="test")
    steps = 30
    for step in range(steps):
        traffic(database, T0 + step * 300, ok=8 + step % 5)  # 8..12 requests per step
    end = T0 + steps * 300
    assert (await runtime.run_once(end)).fired == []
    traffic(database, end, ok=80)
    fired = (await runtime.run_once(end + 300)).fired
    assert len(fired) == 1 and recorder.events() == ["firing"]
    assert fired[0][0].evidence is not None and fired[0][0].evidence["reading"]["detector"] == "mad"

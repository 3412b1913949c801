"""The built-in detectors on small hand-made series: what each flags, what it leaves, how it refuses bad options."""

from __future__ import annotations

import logging
import tomllib
from importlib.metadata import EntryPoint
from pathlib import Path

import numpy as np
import pytest
import yaml

from lmdeck.monitoring.anomaly.auto import AutoDetector
from lmdeck.monitoring.anomaly.base import (
    ENTRY_POINT_GROUP,
    Detector,
    DetectorError,
    DetectorRegistry,
    Series,
)
from lmdeck.monitoring.anomaly.changepoint import ChangepointDetector
from lmdeck.monitoring.anomaly.ewma import RobustEwmaDetector as EwmaDetector
from lmdeck.monitoring.anomaly.mad import MedianMadDetector
from lmdeck.monitoring.anomaly.scoring import Threshold, on_grid
from lmdeck.monitoring.anomaly.seasonal import SeasonalDetector
from lmdeck.plugins import call_hooks
from lmdeck.protocol.alerts import AlertRuleSpec

PYPROJECT = Path(__file__).resolve().parents[3] / "pyproject.toml"
HOUR = 3600
T0 = 1_767_571_200.0  # a Monday, 00:00 UTC


def hourly(values: np.ndarray) -> Series:
    return Series(step=HOUR, times=(T0 + HOUR * np.arange(values.size)).tolist(), values=values.tolist())


def seasonal_values(weeks: int, seed: int = 3) -> np.ndarray:
    rng = np.random.default_rng(seed)
    t = np.arange(weeks * 168)
    level = 100 + 40 * np.sin(2 * np.pi * (t % 24) / 24) - np.where((t // 24) % 7 >= 5, 30.0, 0.0)
    return level + rng.normal(0, 2.0, t.size)


def registered() -> DetectorRegistry:
    """The built-ins loaded from the entry points pyproject.toml declares, as load_detectors loads them."""
    declared = tomllib.loads(PYPROJECT.read_text())["project"]["entry-points"][ENTRY_POINT_GROUP]
    hooks = [EntryPoint(name=name, value=value, group=ENTRY_POINT_GROUP) for name, value in declared.items()]
    registry = call_hooks(hooks, DetectorRegistry(), remedy=str, kind="anomaly detector", log=logging.getLogger())
    assert not registry.unavailable
    return registry


def test_builtins_register_through_the_entry_point_group() -> None:
    registry = registered()
    assert set(registry.names()) >= {"auto", "changepoint", "ewma", "mad", "seasonal"}
    for name in registry.names():
        detector = registry.create(name, sensitivity="high", options={"direction": "up"})
        assert isinstance(detector, Detector)
        assert detector.evaluate(Series(step=HOUR, times=[], values=[])).anomalous is False


def test_a_spike_on_a_flat_noisy_series_is_flagged_by_mad_and_a_normal_point_is_not() -> None:
    values = 50 + np.random.default_rng(1).normal(0, 1.0, 60)
    detector = MedianMadDetector()
    normal = detector.evaluate(hourly(values))
    assert not normal.anomalous and normal.lower is not None and normal.lower < values[-1] < normal.upper
    values[-1] = 60.0
    spike = detector.evaluate(hourly(values))
    assert spike.anomalous and spike.score > 4.5 and spike.at == T0 + HOUR * 59
    assert "mad" in spike.reason and spike.detail["method"] == "mad"


def test_direction_and_min_delta_narrow_what_counts() -> None:
    values = 50 + np.random.default_rng(2).normal(0, 1.0, 60)
    values[-1] = 40.0
    assert MedianMadDetector().evaluate(hourly(values)).anomalous
    up_only = MedianMadDetector(direction="up").evaluate(hourly(values))
    assert not up_only.anomalous and up_only.lower is None
    assert not MedianMadDetector(min_delta=20.0).evaluate(hourly(values)).anomalous


def test_a_flat_zero_series_flags_its_first_errors_unless_below_min_delta() -> None:
    values = np.zeros(60)
    values[-1] = 0.002
    assert MedianMadDetector(direction="up").evaluate(hourly(values)).anomalous
    assert not MedianMadDetector(direction="up", min_delta=0.01).evaluate(hourly(values)).anomalous
    values[-1] = 0.0
    assert not MedianMadDetector(direction="up").evaluate(hourly(values)).anomalous


def test_too_little_history_is_not_judged_and_says_so() -> None:
    short = hourly(np.array([1.0, 2.0, 100.0]))
    for detector in (MedianMadDetector(), EwmaDetector(), SeasonalDetector(), ChangepointDetector(), AutoDetector()):
        finding = detector.evaluate(short)
        assert not finding.anomalous and "not judged" in finding.reason


def test_seasonal_expects_the_hour_of_the_week_and_flags_what_mad_cannot_see() -> None:
    values = seasonal_values(weeks=4)
    # Monday 03:00 of the fourth week, at the level of a Monday afternoon: normal for the day, not for the hour
    end = 3 * 168 + 3
    values[end] = values[end - 168] + 40.0
    series = hourly(values[: end + 1])
    finding = SeasonalDetector().evaluate(series)
    assert finding.anomalous and finding.detail["profile"] == "hour_of_week"
    assert abs(finding.expected - values[end - 168]) < 8
    assert not MedianMadDetector().evaluate(series).anomalous
    assert not SeasonalDetector().evaluate(hourly(seasonal_values(weeks=4)[: end + 1])).anomalous


def test_seasonal_uses_the_daily_profile_with_days_of_history() -> None:
    values = seasonal_values(weeks=1)[: 4 * 24 + 6]
    values[-1] += 30
    finding = SeasonalDetector().evaluate(hourly(values))
    assert finding.anomalous and finding.detail["profile"] == "hour_of_day"


def test_changepoint_flags_a_small_lasting_shift_that_no_single_point_shows() -> None:
    rng = np.random.default_rng(5)
    values = 20 + rng.normal(0, 1.0, 60)  # under three days: no seasonal profile yet
    values[-8:] += 2.5  # each point ~2.5 SD: inside any point detector's band
    series = hourly(values)
    assert not MedianMadDetector().evaluate(series).anomalous
    finding = ChangepointDetector(seasonal=False).evaluate(series)
    assert finding.anomalous and finding.detail["segment_steps"] >= 6
    auto = AutoDetector().evaluate(series)
    assert auto.anomalous and auto.detail["method"] == "changepoint" and auto.detail["chosen"] == "mad"
    values[-1] = 18.5  # back to normal: the finding clears at once
    assert not ChangepointDetector(seasonal=False).evaluate(hourly(values)).anomalous


def test_gaps_stay_gaps_on_the_step_grid() -> None:
    series = Series(step=60, times=[0.0, 60.0, 240.0], values=[1.0, 2.0, 3.0])
    grid = on_grid(series)
    assert grid.size == 5 and np.isnan(grid[2]) and np.isnan(grid[3]) and grid[4] == 3.0


def test_bad_options_name_the_fix() -> None:
    registry = registered()
    with pytest.raises(DetectorError, match="window is at least 3"):
        registry.create("mad", options={"window": 1})
    with pytest.raises(DetectorError, match="direction is one of up, down, both"):
        registry.create("seasonal", options={"direction": "sideways"})
    with pytest.raises(DetectorError, match="z is a positive number"):
        registry.create("changepoint", options={"z": -1})
    with pytest.raises(DetectorError, match=r"'auto'.*unexpected keyword"):
        registry.create("auto", options={"windw": 3})


def test_sensitivities_order_the_thresholds_and_state_their_normal_theory_rate() -> None:
    low, medium, high = (Threshold.of(s) for s in ("low", "medium", "high"))
    assert low.z > medium.z > high.z
    assert medium.normal_false_alarms_per_week(HOUR) < 0.01 < high.normal_false_alarms_per_week(HOUR) * 10
    assert Threshold.of("medium", z=2.0).z == 2.0


def test_a_sensitivity_keeps_its_false_alarms_per_week_at_any_step() -> None:
    medium = Threshold.of("medium")
    assert medium.at_step(HOUR) == 4.5
    assert medium.at_step(300) == pytest.approx(5.0, abs=0.05)  # twelve times the evaluations a week
    assert medium.at_step(86400) < 4.0
    assert medium.normal_false_alarms_per_week(HOUR) == pytest.approx(
        Threshold(z=medium.at_step(300), per_week=False).normal_false_alarms_per_week(300)
    )
    assert Threshold.of("medium", z=4.5).at_step(300) == 4.5  # an explicit z is taken as given


def test_ewma_follows_a_drifting_level_and_flags_a_spike() -> None:
    rng = np.random.default_rng(9)
    values = np.linspace(100, 130, 200) + rng.normal(0, 1.5, 200)
    detector = EwmaDetector()
    normal = detector.evaluate(hourly(values))
    assert not normal.anomalous and abs(normal.expected - 130) < 3
    values[-1] += 12
    spike = detector.evaluate(hourly(values))
    assert spike.anomalous and spike.detail["method"] == "ewma"
    values[-30] += 60  # an earlier spike barely moves the level (clipped)
    assert abs(detector.evaluate(hourly(values[:-1])).expected - 130) < 3


def test_the_documented_rule_and_plugin_example_work() -> None:
    """docs/monitoring.md: the anomaly rule's YAML validates and builds its detector; the plugin example runs."""
    text = (PYPROJECT.parent / "docs" / "monitoring.md").read_text()
    section = text[text.index("## Anomaly rules") :]
    rule_yaml = section[section.index("```yaml") + 7 : section.index("```", section.index("```yaml") + 7)]
    rule = AlertRuleSpec.model_validate(yaml.safe_load(rule_yaml)["alerts"]["rules"][0])
    assert rule.anomaly is not None
    detector = registered().create(
        rule.anomaly.detector, sensitivity=rule.anomaly.sensitivity, options=rule.anomaly.options
    )
    assert isinstance(detector, AutoDetector)
    start = section.index("```python") + 9
    namespace: dict[str, object] = {}
    exec(section[start : section.index("```", start)], namespace)
    plugin = DetectorRegistry()
    namespace["register"](plugin)  # type: ignore[operator]
    values = seasonal_values(weeks=2)[: 168 + 10]
    values[-1] = values[-1 - 168] + 5
    finding = plugin.create("last_week", options={"scale": 1.0}).evaluate(hourly(values))
    assert finding.anomalous and finding.expected == values[-1 - 168]

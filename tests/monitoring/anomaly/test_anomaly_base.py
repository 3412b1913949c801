"""The detector contract: series shape, the registry's lookups and the errors that name the fix."""

from __future__ import annotations

import pytest

from lmdeck.monitoring.anomaly.base import Detector, DetectorError, DetectorRegistry, Finding, Series


class LastAbove:
    """A detector for the contract's sake: the last point is anomalous above ``limit``."""

    def __init__(self, *, sensitivity: str = "medium", limit: float = 1.0) -> None:
        self.sensitivity = sensitivity
        self.limit = limit

    def evaluate(self, series: Series) -> Finding:
        if not len(series):
            return Finding(anomalous=False, reason="empty series")
        value = series.values[-1]
        return Finding(anomalous=value > self.limit, value=value, upper=self.limit, at=series.times[-1])


def test_registry_builds_a_detector_with_sensitivity_and_options() -> None:
    registry = DetectorRegistry()
    registry.add("last_above", LastAbove)
    detector = registry.create("last_above", sensitivity="high", options={"limit": 2.0})
    assert isinstance(detector, Detector)
    finding = detector.evaluate(Series(step=60, times=[0.0, 60.0], values=[1.0, 3.0]))
    assert finding.anomalous and finding.value == 3.0 and finding.at == 60.0
    assert finding.to_dict()["upper"] == 2.0


def test_unknown_detector_bad_option_and_bad_sensitivity_name_the_fix() -> None:
    registry = DetectorRegistry()
    registry.add("last_above", LastAbove)
    registry.unavailable["seasonal"] = "No module named 'x'; install the package"
    with pytest.raises(DetectorError, match="known: last_above"):
        registry.create("nope")
    with pytest.raises(DetectorError, match="unavailable"):
        registry.create("seasonal")
    with pytest.raises(DetectorError, match="last_above"):
        registry.create("last_above", options={"bogus": 1})
    with pytest.raises(DetectorError, match="sensitivity"):
        registry.create("last_above", sensitivity="extreme")  # type: ignore[arg-type]


def test_series_lengths_must_agree() -> None:
    with pytest.raises(ValueError, match="differ"):
        Series(step=60, times=[0.0], values=[])

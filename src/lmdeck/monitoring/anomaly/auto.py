"""``auto``: the detector an anomaly rule gets when it names none, chosen by the history at hand.

With a step that divides a day and at least three days of history, the point detector is
``seasonal`` (hour-of-week profile from three weeks, hour-of-day before that); otherwise ``mad``
over the last 48 steps. Alongside it runs ``changepoint`` (on the same kind of baseline), for
shifts and ramps too small for any single point. The newest point is anomalous when either says
so; the finding is the one that fired (the point detector's when both or neither did), and
``detail["method"]`` names it, ``detail["chosen"]`` the point detector.

    AutoDetector(sensitivity="medium", direction="up").evaluate(series)
"""

from __future__ import annotations

from lmdeck.monitoring.anomaly.base import DetectorRegistry, Finding, Series
from lmdeck.monitoring.anomaly.changepoint import ChangepointDetector
from lmdeck.monitoring.anomaly.mad import MedianMadDetector
from lmdeck.monitoring.anomaly.scoring import not_judged
from lmdeck.monitoring.anomaly.seasonal import SeasonalDetector


class AutoDetector:
    """``seasonal`` or ``mad`` by history length, each together with ``changepoint``.

    Options: ``changepoint`` (run the change-point detector too; default true) and the common
    ``sensitivity``, ``z``, ``direction``, ``min_delta`` (see :mod:`lmdeck.monitoring.anomaly.scoring`).
    """

    name = "auto"

    def __init__(
        self,
        *,
        sensitivity: str = "medium",
        z: float | None = None,
        direction: str = "both",
        min_delta: float = 0.0,
        changepoint: bool = True,
    ) -> None:
        common = {"sensitivity": sensitivity, "z": z, "direction": direction, "min_delta": min_delta}
        self.seasonal = SeasonalDetector(**common)  # type: ignore[arg-type]
        self.mad = MedianMadDetector(**common)  # type: ignore[arg-type]
        self.changepoint = ChangepointDetector(**common) if changepoint else None  # type: ignore[arg-type]

    def evaluate(self, series: Series) -> Finding:
        if not len(series):
            return not_judged(self.name, series, "empty series")
        needs = self.seasonal.baseline.needs(series.step)
        seasonal = needs is not None and len(series) - 1 >= needs
        point = (self.seasonal if seasonal else self.mad).evaluate(series)
        chosen = "seasonal" if seasonal else "mad"
        point.detail["chosen"] = chosen
        if point.anomalous or self.changepoint is None:
            return point
        shift = self.changepoint.evaluate(series)
        if shift.anomalous:
            shift.detail["chosen"] = chosen
            return shift
        return point


def register(registry: DetectorRegistry) -> None:
    registry.add(AutoDetector.name, AutoDetector)

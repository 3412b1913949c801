"""``mad``: the newest point against the median of a trailing window, scaled by its median absolute deviation.

The robust baseline for a series without a seasonal pattern, or with too little history to learn
one: a spike or a few incident points in the window move neither the median nor the MAD much, so
they neither hide the next incident nor widen the band for long::

    MedianMadDetector(window=48).evaluate(series)   # the 48 steps before the newest point
"""

from __future__ import annotations

import numpy as np

from lmdeck.monitoring.anomaly.base import DetectorError, DetectorRegistry, Finding, Series
from lmdeck.monitoring.anomaly.scoring import Threshold, not_judged, on_grid, robust_scale


class MedianMadDetector:
    """Median ± z · 1.4826 · MAD of the ``window`` steps before the newest point.

    Options: ``window`` (steps of history read, >= 3; default 48), ``min_points`` (the fewest values
    in the window needed to judge, 3..window; default 12), and the common ``sensitivity``, ``z``,
    ``direction``, ``min_delta`` (see :mod:`lmdeck.monitoring.anomaly.scoring`).
    """

    name = "mad"

    def __init__(
        self,
        *,
        sensitivity: str = "medium",
        z: float | None = None,
        direction: str = "both",
        min_delta: float = 0.0,
        window: int = 48,
        min_points: int = 12,
    ) -> None:
        if not isinstance(window, int) or window < 3:
            raise DetectorError(f"mad: window is at least 3 steps, got {window!r}")
        if not isinstance(min_points, int) or not 3 <= min_points <= window:
            raise DetectorError(f"mad: min_points is between 3 and window ({window}), got {min_points!r}")
        self.threshold = Threshold.of(sensitivity, z=z, direction=direction, min_delta=min_delta)
        self.window = window
        self.min_points = min_points

    def evaluate(self, series: Series) -> Finding:
        if not len(series):
            return not_judged(self.name, series, "empty series")
        history = on_grid(series)[:-1][-self.window :]
        history = history[np.isfinite(history)]
        if history.size < self.min_points:
            return not_judged(self.name, series, f"{history.size} values in the window, needs {self.min_points}")
        return self.threshold.judge(
            self.name,
            series,
            expected=float(np.median(history)),
            scale=robust_scale(history),
            what="the window's median",
            samples=int(history.size),
        )


def register(registry: DetectorRegistry) -> None:
    registry.add(MedianMadDetector.name, MedianMadDetector)

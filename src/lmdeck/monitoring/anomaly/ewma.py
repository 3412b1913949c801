"""``ewma``: the newest point against an exponentially weighted level whose updates are clipped (robust EWMA).

Like ``mad`` a baseline for a series without a seasonal pattern, but one that follows a drifting
level with a memory of about ``1 / alpha`` steps instead of a fixed window. Each step moves the
level by ``alpha`` x the deviation clipped to ``clip`` scales (Huber's rule), and the scale is the
exponentially weighted root mean square of the same clipped deviations (corrected for the
clipping, as for normal data), so one spike moves neither much; the level and scale start from the median and MAD of the first ``warmup`` values::

    RobustEwmaDetector(alpha=0.1).evaluate(series)
"""

from __future__ import annotations

import math

import numpy as np
from scipy.stats import norm

from lmdeck.monitoring.anomaly.base import DetectorError, DetectorRegistry, Finding, Series
from lmdeck.monitoring.anomaly.scoring import Threshold, not_judged, on_grid, robust_scale


class RobustEwmaDetector:
    """Huber-clipped exponentially weighted level and scale over the last ``window`` steps.

    Options: ``alpha`` (weight of each new step for the level, 0 < alpha < 1; default 0.1),
    ``beta`` (the same for the scale; default 0.05), ``clip`` (scales beyond which a deviation is
    clipped, > 0; default 2.0), ``warmup`` (values that seed level and scale, >= 3; default 12),
    ``window`` (steps of history replayed, >= warmup; default 168), and the common ``sensitivity``,
    ``z``, ``direction``, ``min_delta`` (see :mod:`lmdeck.monitoring.anomaly.scoring`).
    """

    name = "ewma"

    def __init__(
        self,
        *,
        sensitivity: str = "medium",
        z: float | None = None,
        direction: str = "both",
        min_delta: float = 0.0,
        alpha: float = 0.1,
        beta: float = 0.05,
        clip: float = 2.0,
        warmup: int = 12,
        window: int = 168,
    ) -> None:
        for option, value in (("alpha", alpha), ("beta", beta)):
            if not (isinstance(value, int | float) and 0 < value < 1):
                raise DetectorError(f"ewma: {option} is a weight between 0 and 1 (exclusive), got {value!r}")
        if not (isinstance(clip, int | float) and math.isfinite(clip) and clip > 0):
            raise DetectorError(f"ewma: clip is a positive number of scales, got {clip!r}")
        if not isinstance(warmup, int) or warmup < 3:
            raise DetectorError(f"ewma: warmup is at least 3 values, got {warmup!r}")
        if not isinstance(window, int) or window < warmup:
            raise DetectorError(f"ewma: window is at least warmup ({warmup}) steps, got {window!r}")
        self.threshold = Threshold.of(sensitivity, z=z, direction=direction, min_delta=min_delta)
        self.alpha = float(alpha)
        self.beta = float(beta)
        self.clip = float(clip)
        self.warmup = warmup
        self.window = window
        # E[clip(Z, -c, c)^2] for a standard normal Z: turns the clipped variance into a variance
        c = self.clip
        self.consistency = float((2 * norm.cdf(c) - 1) - 2 * c * norm.pdf(c) + 2 * c * c * norm.sf(c))

    def evaluate(self, series: Series) -> Finding:
        if not len(series):
            return not_judged(self.name, series, "empty series")
        history = on_grid(series)[:-1][-self.window :]
        history = history[np.isfinite(history)]
        if history.size < self.warmup:
            return not_judged(self.name, series, f"{history.size} values of history, needs {self.warmup}")
        seed = history[: self.warmup]
        level = float(np.median(seed))
        scale = robust_scale(seed)
        variance = scale * scale
        for value in history[self.warmup :].tolist():
            deviation = value - level
            bound = self.clip * math.sqrt(variance) if variance > 0 else abs(deviation)
            clipped = max(-bound, min(bound, deviation))
            level += self.alpha * clipped
            variance = (1 - self.beta) * variance + self.beta * clipped * clipped
        return self.threshold.judge(
            self.name,
            series,
            expected=level,
            scale=math.sqrt(variance / self.consistency),
            what="the robust EWMA level",
            samples=min(int(history.size), round(2 / self.beta) - 1),
        )


def register(registry: DetectorRegistry) -> None:
    registry.add(RobustEwmaDetector.name, RobustEwmaDetector)

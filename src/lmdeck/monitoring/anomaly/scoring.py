"""What the built-in detectors share: the series on its step grid, a robust scale, the threshold a
sensitivity stands for, and the finding for the newest point.

**Sensitivity.** A built-in detector turns its ``sensitivity`` into ``z``, how many robust standard
deviations (1.4826 x the median absolute deviation of its residuals) the newest point must stray from
the expectation to be anomalous: ``low`` = 5.5, ``medium`` (the default) = 4.5, ``high`` = 3.5
(:data:`Z_BY_SENSITIVITY`), stated for hourly steps: a sensitivity is a budget of false alarms per
week, so at another step ``z`` moves to the value with the same normal-theory false alarms per week
(:meth:`Threshold.at_step`: 4.5 becomes 5.0 at 5-minute steps, 3.8 at daily ones). The option ``z``
sets it directly, at every step. A scale learned from few values is
itself uncertain, so ``z`` is widened as a normal sample's prediction interval would be
(:meth:`Threshold.effective_z`: 4.5 becomes 5.1 over 47 values, 4.7 over 168). On normally distributed residuals a
two-sided ``z`` raises ``2 · P(Z > z)`` false alarms per evaluated step (about 0.001 a week for 4.5
at hourly steps); residuals of real traffic have heavier tails, which is why the defaults sit above
the normal-theory values: ``medium`` is the setting that measured at most one false alarm per
simulated week on the seasonal series of ``bench/anomaly.py`` (results in docs/benchmarks.md).
``direction`` limits alarms to rises (``up``: error rate, latency, cost) or falls (``down``: request
rate, cache hit rate); ``min_delta`` (in the series' own unit) is the smallest deviation that can be
anomalous, so that a flat series (no errors for weeks) does not alarm on its first small blip.

    threshold = Threshold.of("medium", direction="up", min_delta=0.01)
    finding = threshold.judge("mad", series, expected=0.02, scale=0.004, what="the window's median")
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import lru_cache
from typing import Any, Literal

import numpy as np
import numpy.typing as npt
from scipy.stats import norm
from scipy.stats import t as student_t

from lmdeck.monitoring.anomaly.base import SENSITIVITIES, DetectorError, Finding, Series

#: Which deviations count: rises only, falls only, or both.
Direction = Literal["up", "down", "both"]
DIRECTIONS: tuple[str, ...] = ("up", "down", "both")

#: Robust standard deviations from the expectation that make a point anomalous, per sensitivity.
Z_BY_SENSITIVITY: dict[str, float] = {"low": 5.5, "medium": 4.5, "high": 3.5}

#: 1 / Φ⁻¹(3/4): turns a median absolute deviation into a standard deviation for normal data.
MAD_TO_SD = 1.4826

DAY = 86400
WEEK = 7 * DAY
#: The step the sensitivities' ``z`` values are stated for (one evaluation an hour).
REFERENCE_STEP = 3600

Values = npt.NDArray[np.float64]


def on_grid(series: Series) -> Values:
    """The series' values on its step grid from its first time to its last, NaN in the steps it lacks.

    A time off the grid goes to the nearest step; of two values in one step the later wins.
    """
    if not len(series):
        return np.empty(0, dtype=np.float64)
    times = np.asarray(series.times, dtype=np.float64)
    index = np.rint((times - times[0]) / series.step).astype(np.int64)
    grid = np.full(int(index[-1]) + 1 if index.size else 0, np.nan, dtype=np.float64)
    grid[index] = np.asarray(series.values, dtype=np.float64)
    return grid


def robust_scale(residuals: Values) -> float:
    """1.4826 x the MAD of the finite ``residuals``; the mean absolute deviation x 1.2533 when more than
    half are equal (a mostly flat series), and 0.0 for a constant or empty one."""
    finite = residuals[np.isfinite(residuals)]
    if finite.size == 0:
        return 0.0
    deviations = np.abs(finite - np.median(finite))
    mad = float(np.median(deviations))
    if mad > 0:
        return MAD_TO_SD * mad
    return 1.2533 * float(np.mean(deviations))


@dataclass(frozen=True)
class Threshold:
    """The decision rule a sensitivity stands for: ``z`` robust SDs, ``direction``, ``min_delta``."""

    z: float
    direction: Direction = "both"
    min_delta: float = 0.0
    #: ``z`` is a sensitivity's hourly value, moved to the step's number of evaluations a week
    per_week: bool = False

    @classmethod
    def of(
        cls, sensitivity: str = "medium", *, z: float | None = None, direction: str = "both", min_delta: float = 0.0
    ) -> Threshold:
        """The threshold of a detector's ``sensitivity`` (or explicit ``z``); DetectorError names a bad option."""
        if sensitivity not in SENSITIVITIES:
            raise DetectorError(f"sensitivity is one of {', '.join(SENSITIVITIES)}, got {sensitivity!r}")
        if z is not None and not (isinstance(z, int | float) and math.isfinite(z) and z > 0):
            raise DetectorError(f"z is a positive number of robust standard deviations, got {z!r}")
        if direction not in DIRECTIONS:
            raise DetectorError(f"direction is one of {', '.join(DIRECTIONS)}, got {direction!r}")
        if not (isinstance(min_delta, int | float) and math.isfinite(min_delta) and min_delta >= 0):
            raise DetectorError(f"min_delta is >= 0 in the series' unit, got {min_delta!r}")
        if z is not None:
            return cls(z=float(z), direction=direction, min_delta=float(min_delta))  # type: ignore[arg-type]
        return cls(
            z=Z_BY_SENSITIVITY[sensitivity],
            direction=direction,  # type: ignore[arg-type]
            min_delta=float(min_delta),
            per_week=True,
        )

    def normal_false_alarms_per_week(self, step: int) -> float:
        """False alarms a week at ``step`` seconds if the residuals were normal (a lower bound in practice)."""
        tails = 2 if self.direction == "both" else 1
        return float(tails * norm.sf(self.z) * (WEEK / step))

    def at_step(self, step: int) -> float:
        """``z`` for a series of ``step`` seconds: a sensitivity's hourly ``z`` moved to the same normal-theory
        false alarms per week (more evaluations a week need a larger ``z``: 4.5 at 3600 s is 5.0 at 300 s and
        3.9 at a day); an explicit ``z`` as given."""
        if not self.per_week or step == REFERENCE_STEP:
            return self.z
        return _at_step(self.z, step)

    def effective_z(self, samples: int | None, step: int = 3600) -> float:
        """:meth:`at_step`'s ``z`` widened for a scale learned from only ``samples`` values (None: known exactly).

        The same tail probability under Student's t with ``samples - 1`` degrees of freedom, times
        sqrt(1 + 1/samples): the width of a normal sample's prediction interval for one new value.
        47 values turn 4.5 into 5.1, 168 into 4.7; a thousand leave it at 4.5.
        """
        z = self.at_step(step)
        if samples is None or samples < 3:
            return z
        return _widened(z, samples)

    def signed(self, score: float) -> float:
        """``score`` (value - expected, in SDs) turned so that positive means "in the alarming direction"."""
        if self.direction == "up":
            return score
        if self.direction == "down":
            return -score
        return abs(score)

    def signed_array(self, scores: Values) -> Values:
        """:meth:`signed` of each score."""
        if self.direction == "up":
            return scores
        if self.direction == "down":
            return -scores
        return np.abs(scores)

    def judge(
        self,
        method: str,
        series: Series,
        *,
        expected: float,
        scale: float,
        what: str,
        samples: int | None = None,
        detail: dict[str, Any] | None = None,
    ) -> Finding:
        """The finding for the newest point against ``expected`` ± ``z`` · ``scale`` (``what`` names the baseline;
        ``samples``: how many values ``scale`` was learned from, see :meth:`effective_z`)."""
        value = float(series.values[-1])
        at = float(series.times[-1])
        z = self.effective_z(samples, series.step)
        half = max(z * scale, self.min_delta)
        lower = None if self.direction == "up" else expected - half
        upper = None if self.direction == "down" else expected + half
        deviation = value - expected
        score = deviation / scale if scale > 0 else math.copysign(math.inf, deviation) if deviation else 0.0
        anomalous = (
            math.isfinite(value) and abs(deviation) >= self.min_delta and deviation != 0 and self.signed(score) >= z
        )
        verdict = "anomalous" if anomalous else "normal"
        reason = f"{method}: {value:.6g} is {score:+.2f} SD from {what} {expected:.6g}; {verdict} at z={z:.3g}"
        info = {"method": method, "z": z, "direction": self.direction, "scale": scale, **(detail or {})}
        return Finding(
            anomalous=bool(anomalous),
            value=value,
            expected=expected,
            lower=lower,
            upper=upper,
            score=abs(score) if math.isfinite(score) else math.inf,
            at=at,
            reason=reason,
            detail=info,
        )


@lru_cache(maxsize=256)
def _at_step(z: float, step: int) -> float:
    return float(norm.isf(norm.sf(z) * step / REFERENCE_STEP))


@lru_cache(maxsize=4096)
def _widened(z: float, samples: int) -> float:
    return float(student_t.isf(norm.sf(z), samples - 1) * math.sqrt(1 + 1 / samples))


def not_judged(method: str, series: Series, why: str, detail: dict[str, Any] | None = None) -> Finding:
    """The finding of a detector that cannot judge the newest point (too little history, no value)."""
    value = float(series.values[-1]) if len(series) else None
    at = float(series.times[-1]) if len(series) else None
    return Finding(
        anomalous=False,
        value=value,
        at=at,
        reason=f"{method}: {why}; not judged",
        detail={"method": method, **(detail or {})},
    )


__all__ = [
    "DAY",
    "DIRECTIONS",
    "MAD_TO_SD",
    "REFERENCE_STEP",
    "WEEK",
    "Z_BY_SENSITIVITY",
    "Direction",
    "Threshold",
    "not_judged",
    "on_grid",
    "robust_scale",
]

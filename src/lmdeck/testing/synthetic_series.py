"""Synthetic signal series with injected incidents, and the detection rate and false alarms a detector scores on them.

A case is five weeks of hourly values (or of ``step``-second values) of a seasonal signal (a daily cycle, quieter weekends, slow
growth, heavy-tailed noise whose size follows the level; or, with ``seasonal=False``, growth and
noise only), the first four weeks the detector's history and the fifth judged step by step; it
holds one injected incident or none::

    cases = generate(seed=7, per_kind=20, clean=20)
    score = detection(load_detectors().create("auto"), cases)
    score.rate("spike"), score.false_alarms_per_week

Incidents (in units of the local noise standard deviation, sd, sign up or down at random):

- ``spike``: one or two steps 7..10 sd off;
- ``level_shift``: a step of 4..6 sd held 6..24 steps;
- ``slow_ramp``: a linear climb to 6..10 sd over 12..36 steps, held 6 steps.

An incident is detected when the detector calls a step anomalous from the incident's first step
to ``DETECT_WITHIN`` steps after it (a ramp: to its end). A false alarm is the first step of a run
of anomalous steps (one notification per run, as alert grouping sends) outside every incident's
span plus ``SETTLE`` steps after it. Everything is seeded: the same seed gives the same cases and
the same counts on any machine.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Literal

import numpy as np
import numpy.typing as npt

from lmdeck.monitoring.anomaly.base import Detector, Series

Kind = Literal["spike", "level_shift", "slow_ramp"]
KINDS: tuple[Kind, ...] = ("spike", "level_shift", "slow_ramp")

STEP = 3600
DAY = 86400
WEEK = 7 * DAY
WEEK_STEPS = WEEK // STEP
HISTORY_WEEKS = 4
#: Monday 2026-01-05 00:00 UTC, so that phases fall on real hours and weekdays.
START = 1_767_571_200.0
#: Steps after an incident's first step within which a spike or a shift must be flagged.
DETECT_WITHIN = 6
#: Steps after an incident's end in which a run of anomalous steps is not a false alarm.
SETTLE = 24


@dataclass(frozen=True)
class Incident:
    kind: Kind
    start: int  # index into the case's values
    end: int  # exclusive: the first step back to normal
    magnitude_sd: float  # signed, in noise SDs at its peak


@dataclass(frozen=True)
class Case:
    """One series: ``values`` (one per ``step`` seconds, from ``START``), judged from index ``judged_from`` on."""

    values: npt.NDArray[np.float64]
    judged_from: int
    incident: Incident | None
    step: int = STEP

    def series(self, end: int, history: int | None = None) -> Series:
        """The series as it stood with ``values[end - 1]`` newest (the last ``history`` steps, if given)."""
        first = 0 if history is None else max(0, end - history)
        times = START + self.step * np.arange(first, end, dtype=np.float64)
        return Series(step=self.step, times=times.tolist(), values=self.values[first:end].tolist())


def _baseline(
    rng: np.random.Generator, steps: int, seasonal: bool, step: int
) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.float64]]:
    """A level (seasonal, or flat with growth) and its noise SD for ``steps`` steps of ``step`` seconds."""
    t = np.arange(steps, dtype=np.float64) * step / 3600  # hours
    hour = t % 24
    weekday = (t // 24) % 7
    level0 = rng.uniform(50, 500)
    daily = 1.0 + rng.uniform(0.3, 0.8) * np.exp(-0.5 * ((hour - rng.uniform(11, 16)) / rng.uniform(2.5, 4.5)) ** 2)
    weekend = np.where(weekday >= 5, rng.uniform(0.5, 0.8), 1.0)
    growth = 1.0 + rng.uniform(0.0, 0.04) * t / (7 * 24)
    level = level0 * daily * weekend * growth if seasonal else level0 * growth
    noise_sd = rng.uniform(0.02, 0.05) * level0 * np.sqrt(level / level0)
    return level, noise_sd


def _incident(
    rng: np.random.Generator, kind: Kind, judged_from: int, steps: int, step: int
) -> tuple[Incident, npt.NDArray[np.float64]]:
    """An incident of ``kind`` starting in the judged week, and its profile in noise SDs."""
    sign = 1.0 if rng.random() < 0.5 else -1.0
    day = DAY // step
    start = judged_from + int(rng.integers(day, 5 * day))
    shape = np.zeros(steps)
    if kind == "spike":
        length, peak = int(rng.integers(1, 3)), rng.uniform(7, 10)
        shape[start : start + length] = peak
    elif kind == "level_shift":
        length, peak = int(rng.integers(6, 25)), rng.uniform(4, 6)
        shape[start : start + length] = peak
    else:
        climb, peak = int(rng.integers(12, 37)), rng.uniform(6, 10)
        length = climb + 6
        shape[start : start + climb] = peak * np.arange(1, climb + 1) / climb
        shape[start + climb : start + length] = peak
    return Incident(kind, start, start + length, sign * peak), sign * shape


def generate(
    seed: int,
    per_kind: int,
    clean: int,
    *,
    seasonal: bool = True,
    step: int = STEP,
    history_weeks: int = HISTORY_WEEKS,
) -> list[Case]:
    """``per_kind`` cases of each incident kind and ``clean`` cases without, from ``seed``.

    ``seasonal`` False: a level without daily or weekly cycle (only growth and noise). ``step``:
    seconds per value (dividing a day); incident lengths stay in steps. ``history_weeks``: weeks
    before the judged one.
    """
    if DAY % step:
        raise ValueError(f"step must divide a day, got {step}")
    rng = np.random.default_rng(seed)
    week = WEEK // step
    judged_from = history_weeks * week
    steps = judged_from + week
    cases: list[Case] = []
    plan: list[Kind | None] = [kind for kind in KINDS for _ in range(per_kind)] + [None] * clean
    for kind in plan:
        level, noise_sd = _baseline(rng, steps, seasonal, step)
        noise = rng.standard_t(df=5, size=steps) / np.sqrt(5 / 3)  # unit SD, heavy tails
        values = level + noise_sd * noise
        incident = None
        if kind is not None:
            incident, shape = _incident(rng, kind, judged_from, steps, step)
            values = values + shape * noise_sd
        cases.append(Case(values=np.maximum(values, 0.0), judged_from=judged_from, incident=incident, step=step))
    return cases


@dataclass
class Score:
    """Detections per incident kind and false alarms over the judged weeks."""

    detected: dict[str, int] = field(default_factory=lambda: dict.fromkeys(KINDS, 0))
    injected: dict[str, int] = field(default_factory=lambda: dict.fromkeys(KINDS, 0))
    false_alarms: int = 0
    judged_steps: int = 0
    judged_weeks: float = 0.0
    delays: list[int] = field(default_factory=list)

    def rate(self, kind: str | None = None) -> float:
        """Share of injected incidents (of ``kind``, or all) detected."""
        kinds = [kind] if kind else list(KINDS)
        injected = sum(self.injected[k] for k in kinds)
        return sum(self.detected[k] for k in kinds) / injected if injected else 0.0

    @property
    def false_alarms_per_week(self) -> float:
        return self.false_alarms / self.judged_weeks if self.judged_weeks else 0.0


def detection(
    detector: Detector | Callable[[Series], bool], cases: Sequence[Case], *, history: int | None = None
) -> Score:
    """Judge every step of each case's judged week with ``detector`` and count as the module says.

    ``detector`` is a :class:`Detector` or a plain ``series -> anomalous`` function (a static
    threshold, for a baseline); ``history`` limits the steps each evaluation sees.
    """
    judge: Callable[[Series], bool] = (
        (lambda s: detector.evaluate(s).anomalous) if isinstance(detector, Detector) else detector
    )
    score = Score()
    for case in cases:
        flags = np.array([judge(case.series(end + 1, history)) for end in range(case.judged_from, case.values.size)])
        onsets = np.flatnonzero(flags & ~np.concatenate([[False], flags[:-1]])) + case.judged_from
        excused = range(case.incident.start, case.incident.end + SETTLE) if case.incident is not None else range(0)
        score.false_alarms += int(sum(1 for onset in onsets if onset not in excused))
        score.judged_steps += int(flags.size)
        score.judged_weeks += flags.size * case.step / WEEK
        if case.incident is not None:
            incident = case.incident
            score.injected[incident.kind] += 1
            last = incident.end if incident.kind == "slow_ramp" else incident.start + DETECT_WITHIN
            window = flags[incident.start - case.judged_from : last - case.judged_from]
            if window.any():
                score.detected[incident.kind] += 1
                score.delays.append(int(np.argmax(window)))
    return score


__all__ = ["KINDS", "STEP", "WEEK_STEPS", "Case", "Incident", "Kind", "Score", "detection", "generate"]

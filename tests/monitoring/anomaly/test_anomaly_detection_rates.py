"""Detection rate and false alarms per simulated week of the default detector at the default sensitivity.

Seeded synthetic series (:mod:`lmdeck.testing.synthetic_series`): the counts are the same on every
machine. ``bench/anomaly.py`` runs the larger sample and every detector; this is its floor, in two
scenarios: four weeks of seasonal history (``auto`` picks ``seasonal``) and 48 steps of a series
without a season (``auto`` picks ``mad``), both with ``changepoint`` alongside.
"""

from __future__ import annotations

import pytest

from lmdeck.monitoring.anomaly.auto import AutoDetector
from lmdeck.testing.synthetic_series import KINDS, WEEK_STEPS, Score, detection, generate

SEED = 20261201
PER_KIND = 5
CLEAN = 5


@pytest.fixture(scope="module", params=["seasonal", "short"])
def auto_score(request: pytest.FixtureRequest) -> Score:
    if request.param == "seasonal":
        return detection(AutoDetector(), generate(SEED, PER_KIND, CLEAN))
    return detection(AutoDetector(), generate(SEED, PER_KIND, CLEAN, seasonal=False), history=49)


@pytest.mark.parametrize("kind", KINDS)
def test_auto_detects_injected_incidents(auto_score: Score, kind: str) -> None:
    assert auto_score.injected[kind] == PER_KIND
    assert auto_score.rate(kind) >= 0.9, auto_score


def test_auto_raises_at_most_one_false_alarm_per_simulated_week(auto_score: Score) -> None:
    assert auto_score.judged_steps == (len(KINDS) * PER_KIND + CLEAN) * WEEK_STEPS
    assert auto_score.false_alarms_per_week <= 1.0, auto_score

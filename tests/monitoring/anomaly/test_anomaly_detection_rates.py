"""Detection rate and false alarms per simulated week of the default detector at the default sensitivity.

Seeded synthetic series (:mod:`lmdeck.testing.synthetic_series`): the counts are the same on every
machine. ``bench/anomaly.py`` runs the larger sample and every detector; this is its floor.
"""

from __future__ import annotations

import pytest

from lmdeck.monitoring.anomaly.auto import AutoDetector
from lmdeck.testing.synthetic_series import KINDS, Score, detection, generate


@pytest.fixture(scope="module")
def auto_score() -> Score:
    return detection(AutoDetector(), generate(seed=20261201, per_kind=6, clean=6))


@pytest.mark.parametrize("kind", KINDS)
def test_auto_detects_injected_incidents(auto_score: Score, kind: str) -> None:
    assert auto_score.injected[kind] == 6
    assert auto_score.rate(kind) >= 0.9, auto_score


def test_auto_raises_at_most_one_false_alarm_per_simulated_week(auto_score: Score) -> None:
    assert auto_score.judged_steps == 24 * 168
    assert auto_score.false_alarms_per_week <= 1.0, auto_score

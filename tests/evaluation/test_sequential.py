"""The always-valid experiment verdict: A/A read at every interval, A/B with a real difference.

Simulated experiments are read 45 times (every 20 observations per variant up to 900); a
verdict naming any winner in an A/A experiment is a false winner. The fixed-horizon test
read that way declares one in roughly 30% of experiments; the sequential test must stay
within alpha plus simulation error.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pytest
from pydantic import ValidationError

from lmdeck.evaluation.experiments.analysis import analyse
from lmdeck.evaluation.experiments.store import VariantTotals
from lmdeck.evaluation.sequential import msprt
from lmdeck.evaluation.stats import Moments
from lmdeck.protocol.evaluation import ExperimentSpec

LOOKS, STEP, ALPHA = 45, 20, 0.05


def _spec(arms: int, metric: str, **extra: Any) -> ExperimentSpec:
    variants = [{"name": f"v{i}", "weight": 1} for i in range(arms)]
    return ExperimentSpec.model_validate({"name": "sim", "route": "r", "metric": metric, "variants": variants, **extra})


def _moments(values: np.ndarray) -> Moments:
    mean = float(values.mean())
    return Moments(len(values), mean, float(((values - mean) ** 2).sum()))


def _totals(data: list[np.ndarray], n: int, metric: str) -> dict[str, VariantTotals]:
    out = {}
    for i, values in enumerate(data):
        seen = values[:n]
        if metric == "error_rate":
            out[f"v{i}"] = VariantTotals(requests=n, errors=int(seen.sum()), scores={}, feedback={})
        else:
            out[f"v{i}"] = VariantTotals(requests=n, scores={"q": _moments(seen)}, feedback={})
    return out


def _experiment(spec: ExperimentSpec, means: list[float], rng: np.random.Generator) -> str | None:
    """Read the experiment at every interval; the first winner any read declares (None: never)."""
    size = LOOKS * STEP
    if spec.metric == "error_rate":
        data = [(rng.random(size) < m).astype(float) for m in means]
    else:
        data = [np.clip(rng.normal(m, 0.25, size), 0.0, 1.0) for m in means]
    for look in range(1, LOOKS + 1):
        _, verdict = analyse(spec, _totals(data, look * STEP, spec.metric))
        if verdict.status == "winner":
            return verdict.winner
    return None


def _slack(reps: int) -> float:
    return 3.0 * math.sqrt(ALPHA * (1 - ALPHA) / reps)


@pytest.mark.parametrize(
    ("arms", "metric", "mean"),
    [(2, "error_rate", 0.1), (3, "error_rate", 0.1), (2, "score:q", 0.6), (3, "score:q", 0.6)],
)
def test_a_a_read_at_every_interval_rarely_declares_a_winner(arms: int, metric: str, mean: float) -> None:
    rng, reps = np.random.default_rng(arms * 7 + len(metric)), 120
    spec = _spec(arms, metric)
    false_winners = sum(_experiment(spec, [mean] * arms, rng) is not None for _ in range(reps))
    assert false_winners / reps <= ALPHA + _slack(reps), false_winners / reps


def test_peeking_at_a_fixed_horizon_test_would_inflate_false_winners() -> None:
    """The contrast that makes the sequential design the default: the same reads, a classical test."""
    rng, reps = np.random.default_rng(11), 50
    peeking = ExperimentSpec.model_validate(
        {**_spec(2, "error_rate").model_dump(), "design": "fixed_horizon", "sample_size": 30}
    )
    false_winners = sum(_experiment(peeking, [0.1, 0.1], rng) is not None for _ in range(reps))
    assert false_winners / reps > 0.1


@pytest.mark.parametrize(("metric", "means"), [("error_rate", [0.10, 0.20]), ("score:q", [0.55, 0.65])])
def test_a_b_with_a_real_difference_reaches_the_right_verdict(metric: str, means: list[float]) -> None:
    rng, reps = np.random.default_rng(5), 40
    spec = _spec(2, metric)
    winners = [_experiment(spec, means, rng) for _ in range(reps)]
    better = "v0" if metric == "error_rate" else "v1"  # a lower error rate wins; a higher score wins
    assert winners.count(better) >= 0.9 * reps and all(w in (better, None) for w in winners), winners


def test_the_verdict_names_its_method_and_parameters_and_the_evidence_its_level() -> None:
    rng = np.random.default_rng(1)
    data = [(rng.random(400) < p).astype(float) for p in (0.3, 0.1, 0.3)]
    _, verdict = analyse(_spec(3, "error_rate"), _totals(data, 400, "error_rate"))
    shown = verdict.to_dict()
    assert shown["method"] == "msprt-normal-mixture" and shown["winner"] == "v1"
    assert shown["parameters"] == {
        "mixture_scale": 0.2,
        "min_samples": 30,
        "alpha": 0.05,
        "correction": "bonferroni",
        "comparisons": 2,
    }
    assert shown["alpha"] == pytest.approx(0.025)
    assert "97.5% confidence sequence (Bonferroni, 2 comparisons)" in shown["evidence"][0]
    assert "always-valid p=" in shown["evidence"][0] and "vs alpha 0.025" in shown["evidence"][0]


def test_fixed_horizon_needs_a_sample_size_and_waits_for_it() -> None:
    with pytest.raises(ValidationError, match="needs `sample_size`"):
        _spec(2, "error_rate", design="fixed_horizon")
    with pytest.raises(ValidationError, match="applies to design: fixed_horizon"):
        _spec(2, "error_rate", sample_size=100)
    spec = _spec(2, "error_rate", design="fixed_horizon", sample_size=500)
    rng = np.random.default_rng(2)
    data = [(rng.random(600) < p).astype(float) for p in (0.3, 0.05)]
    _, early = analyse(spec, _totals(data, 400, "error_rate"))
    assert early.status == "collecting" and "400 of 500" in early.evidence[0] and "sample_size" in early.evidence[0]
    _, done = analyse(spec, _totals(data, 500, "error_rate"))
    assert done.status == "winner" and done.method == "two-proportion-z"
    assert done.parameters["sample_size"] == 500 and "95% CI" in done.evidence[0]


def test_msprt_confidence_sequence_agrees_with_its_p_value() -> None:
    rng = np.random.default_rng(3)
    for shift in (0.0, 0.05, 0.1, 0.3):
        a, b = _moments(rng.normal(0, 1, 300)), _moments(rng.normal(shift, 1, 300))
        result = msprt(a, b, alpha=0.05)
        assert result.low is not None and result.high is not None
        assert (result.p_value <= 0.05) == (result.low > 0 or result.high < 0), result
    assert not msprt(Moments(1, 0.0, 0.0), Moments(5, 1.0, 1.0)).defined
    assert not msprt(Moments(5, 1.0, 0.0), Moments(5, 1.0, 0.0)).defined


@pytest.mark.parametrize("shift", [0.0, 0.1])
def test_the_confidence_sequence_covers_the_true_difference_at_every_look(shift: float) -> None:
    rng, reps = np.random.default_rng(17), 150
    misses = 0
    for _ in range(reps):
        a_values, b_values = rng.normal(0.5, 0.25, LOOKS * STEP), rng.normal(0.5 + shift, 0.25, LOOKS * STEP)
        for look in range(2, LOOKS + 1):
            n = look * STEP
            result = msprt(_moments(a_values[:n]), _moments(b_values[:n]), alpha=ALPHA)
            assert result.low is not None and result.high is not None
            if not result.low <= shift <= result.high:
                misses += 1
                break
    assert misses / reps <= ALPHA + _slack(reps), misses / reps

"""Per-variant statistics and the verdict: which variant wins, with the evidence.

Each challenger is compared with the control (the first variant) on the experiment's metric.
The verdict is recomputed on every read, so the default design is sequential: a mixture SPRT
(:mod:`lmdeck.evaluation.sequential`) whose always-valid p-value and confidence sequence keep
their guarantee however often the experiment is read. The ``fixed_horizon`` design uses the
classical tests (a two-proportion z-test for the error rate, Welch's t-test otherwise) and gives
no verdict before every variant has the declared ``sample_size`` observations. With several
challengers the significance level is split between them (Bonferroni), and the intervals in the
evidence are shown at that adjusted level, the one the decision uses. No verdict is given
before every variant has ``min_samples`` observations of the metric.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

from lmdeck.evaluation.experiments.store import VariantTotals
from lmdeck.evaluation.sequential import METHOD as SEQUENTIAL_METHOD
from lmdeck.evaluation.sequential import msprt, proportion_moments
from lmdeck.evaluation.stats import Difference, Moments, two_proportion_test, welch_test
from lmdeck.protocol.evaluation import LOWER_IS_BETTER, ExperimentSpec


def metric_moments(totals: VariantTotals, metric: str) -> tuple[Moments, float | None]:
    """(moments of the metric's observations, error successes for the proportion test)."""
    if metric == "error_rate":
        n, errors = totals.requests, totals.errors
        return proportion_moments(float(errors), n), float(errors)
    if metric == "latency":
        return totals.latency, None
    if metric == "cost":
        return totals.cost, None
    kind, _, key = metric.partition(":")
    bucket = (totals.scores if kind == "score" else totals.feedback) or {}
    return bucket.get(key, Moments()), None


def _fmt(value: float | None) -> str:
    return "n/a" if value is None or math.isnan(value) else f"{value:.4g}"


@dataclass
class VariantStats:
    name: str
    weight: float
    requests: int
    error_rate: float
    latency_ms_mean: float
    cost_mean: float
    metric_n: int
    metric_mean: float
    scores: dict[str, dict[str, float]] = field(default_factory=dict)
    feedback: dict[str, dict[str, float]] = field(default_factory=dict)
    versus_control: Difference | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "weight": self.weight,
            "requests": self.requests,
            "error_rate": self.error_rate,
            "latency_ms_mean": self.latency_ms_mean,
            "cost_mean": self.cost_mean,
            "metric": {"n": self.metric_n, "mean": self.metric_mean},
            "scores": self.scores,
            "feedback": self.feedback,
            "versus_control": self.versus_control.to_dict() if self.versus_control else None,
        }


@dataclass
class Verdict:
    """``status``: collecting | winner | no_difference; ``alpha``: the per-comparison level (Bonferroni)."""

    status: str
    winner: str | None
    evidence: list[str]
    metric: str
    alpha: float
    method: str = SEQUENTIAL_METHOD
    parameters: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {
            "status": self.status,
            "winner": self.winner,
            "evidence": self.evidence,
            "metric": self.metric,
            "alpha": self.alpha,
            "method": self.method,
            "parameters": self.parameters,
        }


def _test(
    spec: ExperimentSpec, base: tuple[Moments, float | None], mine: tuple[Moments, float | None], alpha: float
) -> Difference:
    if spec.design == "sequential":
        return msprt(base[0], mine[0], alpha=alpha, mixture_scale=spec.mixture_scale)
    if spec.metric == "error_rate":
        return two_proportion_test(base[1] or 0.0, base[0].n, mine[1] or 0.0, mine[0].n, confidence=1.0 - alpha)
    return welch_test(base[0], mine[0], confidence=1.0 - alpha)


def _summaries(bucket: dict[str, Moments] | None) -> dict[str, dict[str, float]]:
    return {k: {"n": m.n, "mean": m.mean} for k, m in (bucket or {}).items()}


def analyse(spec: ExperimentSpec, totals: dict[str, VariantTotals]) -> tuple[list[VariantStats], Verdict]:
    metric = spec.metric
    lower_better = metric in LOWER_IS_BETTER
    rows: list[VariantStats] = []
    moments: dict[str, tuple[Moments, float | None]] = {}
    for variant in spec.variants:
        t = totals.get(variant.name, VariantTotals(scores={}, feedback={}))
        m = metric_moments(t, metric)
        moments[variant.name] = m
        rows.append(
            VariantStats(
                name=variant.name,
                weight=variant.weight,
                requests=t.requests,
                error_rate=t.errors / t.requests if t.requests else math.nan,
                latency_ms_mean=t.latency.mean,
                cost_mean=t.cost.mean,
                metric_n=m[0].n,
                metric_mean=m[0].mean,
                scores=_summaries(t.scores),
                feedback=_summaries(t.feedback),
            )
        )
    control = spec.control.name
    challengers = max(1, len(spec.variants) - 1)
    alpha = spec.alpha / challengers
    if spec.design == "sequential":
        method = SEQUENTIAL_METHOD
        parameters: dict[str, Any] = {"mixture_scale": spec.mixture_scale, "min_samples": spec.min_samples}
    else:
        method = "two-proportion-z" if metric == "error_rate" else "welch-t"
        parameters = {"sample_size": spec.sample_size, "min_samples": spec.min_samples}
    parameters.update({"alpha": spec.alpha, "correction": "bonferroni", "comparisons": challengers})
    for row in rows[1:]:
        row.versus_control = _test(spec, moments[control], moments[row.name], alpha)
    needed = max(spec.min_samples, spec.sample_size or 0)
    short = [r.name for r in rows if r.metric_n < needed]
    if short:
        what = "the fixed horizon's sample_size" if spec.sample_size and needed == spec.sample_size else "min_samples"
        evidence = [f"{r.name}: {r.metric_n} of {needed} observations of {metric} ({what})" for r in rows]
        return rows, Verdict("collecting", None, evidence, metric, alpha, method, parameters)
    evidence = []
    better: list[tuple[float, str]] = []
    control_beats_all = True
    for row in rows[1:]:
        test = row.versus_control
        assert test is not None
        gain = -test.delta if lower_better else test.delta
        significant = test.p_value < alpha
        kind = "confidence sequence" if spec.design == "sequential" else "CI"
        level = f"{100 * (1 - alpha):.4g}% {kind}" + (
            f" (Bonferroni, {challengers} comparisons)" if challengers > 1 else ""
        )
        interval = "undefined" if not test.defined else f"[{_fmt(test.low)}, {_fmt(test.high)}]"
        evidence.append(
            f"{row.name} vs {control}: {metric} {_fmt(row.metric_mean)} vs {_fmt(rows[0].metric_mean)} "
            f"(delta {_fmt(test.delta)}, {level} {interval}, {'always-valid ' if spec.design == 'sequential' else ''}p={test.p_value:.3g} vs alpha {alpha:.3g}, "
            f"{test.method}, n={row.metric_n}/{rows[0].metric_n})"
        )
        if significant and gain > 0:
            better.append((gain, row.name))
        if not (significant and gain < 0):
            control_beats_all = False
    if better:
        winner = max(better)[1]
        return rows, Verdict("winner", winner, evidence, metric, alpha, method, parameters)
    if control_beats_all:
        return rows, Verdict("winner", control, evidence, metric, alpha, method, parameters)
    return rows, Verdict("no_difference", None, evidence, metric, alpha, method, parameters)

"""One analysis of a release: candidate against baseline on the same live traffic, and the decision.

Each metric of the spec is compared on the requests of the current canary step (both variants
serve the same traffic at the same time, so the step's data is one experiment). The difference
``candidate - baseline`` is turned into "how much worse" (its sign flipped for metrics where
higher is better) and tested with the always-valid mixture SPRT of
:func:`lmdeck.evaluation.sequential.msprt`, whose confidence sequence may be read at every
interval without inflating its error rate:

``fail``
    the whole interval of "worse by" lies above ``tolerance``: the candidate is worse than allowed;
``pass``
    the whole interval lies below ``tolerance``: the candidate is shown to be no worse than allowed;
``inconclusive``
    the interval straddles ``tolerance``; ``waiting`` while either variant has under ``min_samples``.

A false rollback needs one metric of one step to fail wrongly, so each test runs at
``alpha / (metrics x steps)`` (Bonferroni): the chance that a candidate no worse than the
baseline is ever rolled back, over every interval of the whole release, stays under ``alpha``.

The decision, in order: a hard guard crossed (on the step's or the last interval's candidate
requests) or any metric failing rolls back; the deadline passed aborts; too little time
(``interval_s`` since the step began) or too few samples waits; every metric passing promotes
to the next step; otherwise hold.

Metrics: ``error_rate`` (status >= 400), ``guardrail_block_rate`` (proportions);
``latency`` (mean ms), ``ttft`` (mean ms over streamed requests), ``cost`` (mean USD per
request); ``latency_p95``: the share of requests slower than the baseline's p95 plus
``tolerance`` ms, which is about 5% for a candidate whose p95 is within tolerance, so it fails
when the candidate's share is shown to exceed the baseline's by more than
:data:`P95_MARGIN` and passes when shown not to; ``score:<evaluator>`` and ``feedback:<name>``:
mean values (0/1 values as proportions).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from lmdeck.delivery.store import ReleaseExposure
from lmdeck.evaluation.sequential import msprt, proportion_moments
from lmdeck.evaluation.stats import Moments
from lmdeck.protocol.delivery import Analysis, MetricResult, MetricSpec, ReleaseSpec

#: How much more of the candidate's traffic may be slower than the baseline's p95 + tolerance.
P95_MARGIN = 0.05


@dataclass(frozen=True)
class Window:
    """What one analysis reads: the step's exposures, those since the last analysis, and per metric
    ``score:``/``feedback:`` the values of each variant (``{"baseline": [...], "candidate": [...]}``)."""

    step: list[ReleaseExposure]
    recent: list[ReleaseExposure]
    values: dict[str, dict[str, list[float]]]


def _moments(values: Sequence[float]) -> Moments:
    if values and all(v in (0.0, 1.0) for v in values):
        return proportion_moments(sum(values), len(values))
    m = Moments()
    for v in values:
        m = m.add(v)
    return m


def _split(exposures: Sequence[ReleaseExposure]) -> tuple[list[ReleaseExposure], list[ReleaseExposure]]:
    base = [e for e in exposures if e.variant == "baseline"]
    cand = [e for e in exposures if e.variant == "candidate"]
    return base, cand


_PER_REQUEST: dict[str, Callable[[ReleaseExposure], float | None]] = {
    "error_rate": lambda e: 1.0 if e.status_code >= 400 else 0.0,
    "guardrail_block_rate": lambda e: 1.0 if e.blocked else 0.0,
    "latency": lambda e: e.latency_ms,
    "ttft": lambda e: e.ttft_ms,
    "cost": lambda e: e.cost,
}


def _series(metric: str, window: Window) -> tuple[list[float], list[float]]:
    """(baseline values, candidate values) of one metric other than ``latency_p95``."""
    if metric.startswith(("score:", "feedback:")):
        found = window.values.get(metric, {})
        return found.get("baseline", []), found.get("candidate", [])
    base_e, cand_e = _split(window.step)
    pick = _PER_REQUEST[metric]
    base = [v for v in (pick(e) for e in base_e) if v is not None]
    cand = [v for v in (pick(e) for e in cand_e) if v is not None]
    return base, cand


def _mean(values: Sequence[float]) -> float | None:
    return float(np.mean(values)) if values else None


def _test(
    spec: MetricSpec,
    base: Sequence[float],
    cand: Sequence[float],
    *,
    tolerance: float,
    shown: tuple[float | None, float | None],
    min_samples: int,
    alpha: float,
    mixture_scale: float,
) -> MetricResult:
    better = spec.better
    result = MetricResult(
        name=spec.name,
        better=better,
        tolerance=spec.tolerance,
        baseline=shown[0],
        candidate=shown[1],
        baseline_n=len(base),
        candidate_n=len(cand),
        difference=None,
        low=None,
        high=None,
        p_value=None,
        verdict="waiting",
    )
    if len(base) < min_samples or len(cand) < min_samples:
        return result
    diff = msprt(_moments(base), _moments(cand), alpha=alpha, mixture_scale=mixture_scale)
    result.difference, result.p_value = diff.delta, diff.p_value
    if diff.low is None or diff.high is None:
        result.verdict = "inconclusive"
        return result
    # "Worse by": candidate - baseline where lower is better, baseline - candidate where higher is.
    low, high = (diff.low, diff.high) if better == "lower" else (-diff.high, -diff.low)
    result.low, result.high = low, high
    if low > tolerance:
        result.verdict = "fail"
    elif high < tolerance:
        result.verdict = "pass"
    else:
        result.verdict = "inconclusive"
    return result


def _p95(spec: MetricSpec, window: Window, **kw: float | int) -> MetricResult:
    base_e, cand_e = _split(window.step)
    base_lat = [e.latency_ms for e in base_e]
    cand_lat = [e.latency_ms for e in cand_e]
    shown = (
        float(np.percentile(base_lat, 95)) if base_lat else None,
        float(np.percentile(cand_lat, 95)) if cand_lat else None,
    )
    if shown[0] is None:
        base, cand = [], []
    else:
        threshold = shown[0] + spec.tolerance
        base = [1.0 if v > threshold else 0.0 for v in base_lat]
        cand = [1.0 if v > threshold else 0.0 for v in cand_lat]
    result = _test(
        spec,
        base,
        cand,
        tolerance=P95_MARGIN,
        shown=shown,
        min_samples=int(kw["min_samples"]),
        alpha=float(kw["alpha"]),
        mixture_scale=float(kw["mixture_scale"]),
    )
    return result


def _guards(spec: ReleaseSpec, window: Window) -> list[dict[str, object]]:
    out: list[dict[str, object]] = []
    for guard in spec.hard_guards:
        pick = _PER_REQUEST[guard.metric]
        for where, exposures in (("step", window.step), ("last interval", window.recent)):
            _, cand = _split(exposures)
            if len(cand) < guard.min_samples:
                continue
            observed = sum(pick(e) or 0.0 for e in cand) / len(cand)
            out.append(
                {
                    "metric": guard.metric,
                    "window": where,
                    "ceiling": guard.ceiling,
                    "observed": observed,
                    "n": len(cand),
                    "crossed": observed > guard.ceiling,
                }
            )
    return out


def analyse(
    spec: ReleaseSpec,
    window: Window,
    *,
    now: float,
    step: int,
    step_started_at: float,
    started_at: float,
) -> Analysis:
    """Compare the variants of ``window`` and decide (module docs). Pure: no I/O."""
    strategy = spec.strategy
    alpha = strategy.alpha / (len(spec.metrics) * len(strategy.steps))
    kw: dict[str, float | int] = {
        "min_samples": strategy.min_samples,
        "alpha": alpha,
        "mixture_scale": strategy.mixture_scale,
    }
    results: list[MetricResult] = []
    for metric in spec.metrics:
        if metric.name == "latency_p95":
            results.append(_p95(metric, window, **kw))
            continue
        base, cand = _series(metric.name, window)
        results.append(
            _test(
                metric,
                base,
                cand,
                tolerance=metric.tolerance,
                shown=(_mean(base), _mean(cand)),
                min_samples=strategy.min_samples,
                alpha=alpha,
                mixture_scale=strategy.mixture_scale,
            )
        )
    guards = _guards(spec, window)
    base_e, cand_e = _split(window.step)
    percent = strategy.steps[step]

    def made(decision: str, reason: str) -> Analysis:
        return Analysis.model_validate(
            {
                "at": now,
                "step": step,
                "percent": percent,
                "baseline_requests": len(base_e),
                "candidate_requests": len(cand_e),
                "metrics": [r.model_dump() for r in results],
                "guards": guards,
                "decision": decision,
                "reason": reason,
            }
        )

    crossed = [g for g in guards if g["crossed"]]
    if crossed:
        g = crossed[0]
        return made(
            "rollback",
            f"hard guard: candidate {g['metric']} {float(g['observed']):.3f} over the ceiling "  # type: ignore[arg-type]
            f"{g['ceiling']} ({g['n']} requests, {g['window']})",
        )
    failed = [r for r in results if r.verdict == "fail"]
    if failed:
        return made("rollback", "; ".join(_described(r) for r in failed))
    if now >= started_at + strategy.deadline_s:
        return made("abort", f"deadline: {strategy.deadline_s:g}s since the start passed without a verdict")
    if now < step_started_at + strategy.interval_s:
        return made("wait", f"the step is held {strategy.interval_s:g}s; {now - step_started_at:.1f}s so far")
    waiting = [r for r in results if r.verdict == "waiting"]
    if waiting:
        return made(
            "wait",
            f"{strategy.min_samples} samples per variant needed; "
            + ", ".join(f"{r.name}: {r.baseline_n}/{r.candidate_n}" for r in waiting),
        )
    if all(r.verdict == "pass" for r in results):
        return made("promote", "every metric within tolerance: " + "; ".join(_described(r) for r in results))
    unsure = [r for r in results if r.verdict != "pass"]
    return made("hold", "not yet shown within tolerance: " + "; ".join(_described(r) for r in unsure))


def _described(r: MetricResult) -> str:
    def num(v: float | None) -> str:
        return "n/a" if v is None or math.isnan(v) else f"{v:.4g}"

    return (
        f"{r.name} baseline {num(r.baseline)} vs candidate {num(r.candidate)} "
        f"(worse by [{num(r.low)}, {num(r.high)}], tolerance {r.tolerance:g}, {r.verdict})"
    )

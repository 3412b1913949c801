"""A run's aggregate: each evaluator's mean with its 95% interval, latency, tokens, cost, errors."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

from lmdeck.evaluation.stats import mean_interval
from lmdeck.protocol.evaluation import RowResult

#: The label of a score whose evaluator raised instead of scoring (see ``runner.score_safely``).
EVALUATOR_ERROR = "evaluator_error"


def percentile(values: Sequence[float], q: float) -> float | None:
    """The ``q``-quantile (0..1) by linear interpolation, or None without values."""
    if not values:
        return None
    ordered = sorted(values)
    pos = q * (len(ordered) - 1)
    low, high = math.floor(pos), math.ceil(pos)
    return ordered[low] + (ordered[high] - ordered[low]) * (pos - low)


def score_values(results: Sequence[RowResult], key: str) -> list[float]:
    """The evaluator's value on every row; a row that failed or was left unscored counts as 0."""
    return [r.value(key) or 0.0 for r in results]


def summarize(results: Sequence[RowResult], keys: Sequence[str]) -> dict[str, Any]:
    """The summary stored with a finished run.

    >>> summarize([RowResult(idx=0, scores={"exact": {"value": 1.0}}, latency_ms=5.0)], ["exact"])["scores"]["exact"]["mean"]
    1.0
    """
    scores: dict[str, Any] = {}
    for key in keys:
        interval = mean_interval(score_values(results, key))
        unscored = sum(1 for r in results if r.value(key) is None)
        # Rows the evaluator itself failed on (an unreadable judge reply, say): unscored, and counted apart.
        failed = sum(1 for r in results if (r.scores.get(key) or {}).get("label") == EVALUATOR_ERROR)
        scores[key] = {**interval.to_dict(), "unscored": unscored, "evaluator_errors": failed}
    latencies = [r.latency_ms for r in results if r.latency_ms is not None and r.error is None]
    errors = sum(1 for r in results if r.error is not None)
    return {
        "rows": len(results),
        "scores": scores,
        "errors": errors,
        "error_rate": errors / len(results) if results else 0.0,
        "latency_ms": {"p50": percentile(latencies, 0.5), "p95": percentile(latencies, 0.95)},
        "tokens": {
            "input": sum(r.input_tokens for r in results),
            "output": sum(r.output_tokens for r in results),
        },
        "cost": math.fsum(r.cost for r in results),
    }

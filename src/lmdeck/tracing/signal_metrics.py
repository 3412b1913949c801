"""Named metrics over :class:`~lmdeck.tracing.signals.Totals`: what alert rules and charts plot.

    totals = signals.totals(by=("target",), since=now - 300, until=now, quantiles=needs_sketches("latency_p95"))
    metric_value(totals[0], "latency_p95", window_s=300)      # ms, or None without traffic

Units: ``*_rate`` of errors, cache hits and guardrail actions are shares of requests (0..1; guardrail
actions per request may pass 1); ``request_rate`` is requests per second; latency and TTFT quantiles are
milliseconds; ``cost_per_hour`` is micro-dollars per hour; ``cost_micros`` micro-dollars in the window;
``mean_output_tokens`` is the output length in tokens per request.
"""

from __future__ import annotations

from collections.abc import Callable

from lmdeck.tracing.signals import Totals

_QUANTILES: dict[str, tuple[str, float]] = {
    f"{kind}_p{p}": (kind, p / 100) for kind in ("latency", "ttft") for p in (50, 95, 99)
}

_SIMPLE: dict[str, Callable[[Totals, float], float | None]] = {
    "requests": lambda t, w: float(t.requests),
    "request_rate": lambda t, w: t.requests / w if w > 0 else None,
    "errors": lambda t, w: float(t.errors),
    "error_rate": lambda t, w: t.error_rate if t.requests else None,
    "mean_latency_ms": lambda t, w: t.mean_latency_ms,
    "input_tokens": lambda t, w: float(t.input_tokens),
    "output_tokens": lambda t, w: float(t.output_tokens),
    "mean_output_tokens": lambda t, w: t.mean_output_tokens,
    "cost_micros": lambda t, w: float(t.cost_micros),
    "cost_per_hour": lambda t, w: t.cost_micros * 3600.0 / w if w > 0 else None,
    "cache_hit_rate": lambda t, w: t.cache_hit_rate if t.requests else None,
    "guardrail_action_rate": lambda t, w: t.guardrail_action_rate if t.requests else None,
}

#: Every metric name :func:`metric_value` knows.
METRIC_NAMES: tuple[str, ...] = (*_SIMPLE, *_QUANTILES)


def needs_sketches(metric: str) -> tuple[float, ...]:
    """The ``quantiles`` argument a Signals query needs for ``metric`` (empty when it reads counters only)."""
    return (_QUANTILES[metric][1],) if metric in _QUANTILES else ()


def metric_value(totals: Totals, metric: str, window_s: float) -> float | None:
    """``metric`` of one group's totals over a window of ``window_s`` seconds; None when it has no value
    (no traffic, or no sketch: query with :func:`needs_sketches`). ``KeyError`` for an unknown metric."""
    if metric in _QUANTILES:
        kind, q = _QUANTILES[metric]
        sketch = totals.latency if kind == "latency" else totals.ttft
        return sketch.quantile(q) if sketch is not None else None
    return _SIMPLE[metric](totals, window_s)


__all__ = ["METRIC_NAMES", "metric_value", "needs_sketches"]

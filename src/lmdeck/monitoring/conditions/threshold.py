"""Threshold rules: the metric over the window compared with ``threshold``; resolves past ``clear_threshold``.

rule: {kind: threshold, signal: {metric: error_rate, window_s: 300}, op: ">", threshold: 0.2,
       clear_threshold: 0.05}
# fires above 0.2; once firing, it resolves only at or below 0.05 (no flapping between the two)
"""

from __future__ import annotations

from lmdeck.monitoring.conditions.base import COMPARE, Reading, group_label, group_totals
from lmdeck.protocol.alerts import AlertRuleSpec
from lmdeck.tracing.signal_metrics import metric_value, needs_sketches
from lmdeck.tracing.signals import Signals


class ThresholdCondition:
    """The ``threshold`` rule kind."""

    def read(self, signals: Signals, rule: AlertRuleSpec, now: float) -> list[Reading]:
        signal = rule.signal
        assert rule.threshold is not None  # the spec refuses a threshold rule without one
        threshold = rule.threshold
        clear = rule.clear_threshold if rule.clear_threshold is not None else threshold
        compare = COMPARE[rule.op]
        readings = []
        rows = group_totals(signals, signal, now - signal.window_s, now, needs_sketches(signal.metric))
        for totals in rows:
            if totals.requests < max(signal.min_requests, 1):
                continue
            value = metric_value(totals, signal.metric, signal.window_s)
            if value is None:
                continue
            summary = (
                f"{signal.metric} {value:.4g} {rule.op} {threshold:g} over the last {signal.window_s}s"
                f"{group_label(totals.group)}, {totals.requests} requests"
            )
            readings.append(
                Reading(
                    group=totals.group,
                    value=value,
                    active=compare(value, threshold),
                    cleared=not compare(value, clear),
                    summary=summary,
                    detail={"threshold": threshold, "clear_threshold": clear, "requests": totals.requests},
                )
            )
        return readings

"""Burn-rate rules on an availability SLO: fire when both windows spend the error budget ``factor`` times
too fast; resolve when the short window is back under it (multi-window, multi-burn-rate alerting)."""

from __future__ import annotations

import json

from lmdeck.monitoring.conditions.base import Reading, group_label, group_totals
from lmdeck.protocol.alerts import AlertRuleSpec
from lmdeck.tracing.signals import Signals, Totals


class BurnRateCondition:
    """The ``burn_rate`` rule kind (see :class:`lmdeck.protocol.alerts.BurnRateSpec`)."""

    def read(self, signals: Signals, rule: AlertRuleSpec, now: float) -> list[Reading]:
        spec = rule.burn_rate
        assert spec is not None  # filled by the rule's validator
        budget = 1.0 - spec.objective
        signal = rule.signal

        def burns(window: int) -> dict[str, tuple[Totals, float]]:
            rows = group_totals(signals, signal, now - window, now)
            return {
                json.dumps(t.group, sort_keys=True, default=str): (t, t.error_rate / budget)
                for t in rows
                if t.requests >= max(signal.min_requests, 1)
            }

        long_burns, short_burns = burns(spec.long_window_s), burns(spec.short_window_s)
        readings = []
        for key, (totals, long_burn) in long_burns.items():
            short = short_burns.get(key)
            short_burn = short[1] if short is not None else 0.0
            active = long_burn > spec.factor and short_burn > spec.factor
            readings.append(
                Reading(
                    group=totals.group,
                    value=long_burn,
                    active=active,
                    cleared=short_burn <= spec.factor,
                    summary=(
                        f"error budget burning {long_burn:.3g}x over {spec.long_window_s}s and {short_burn:.3g}x over "
                        f"{spec.short_window_s}s (fires above {spec.factor:g}x; objective {spec.objective:g})"
                        f"{group_label(totals.group)}"
                    ),
                    detail={"long_burn": long_burn, "short_burn": short_burn, "factor": spec.factor},
                )
            )
        return readings

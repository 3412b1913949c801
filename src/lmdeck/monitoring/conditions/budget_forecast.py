"""Budget-forecast rules: spend so far in the period plus the recent hourly rate until the period ends,
compared with the budget; resolves once the forecast is back within it."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

from lmdeck.monitoring.conditions.base import Reading, group_label, group_totals
from lmdeck.protocol.alerts import AlertRuleSpec
from lmdeck.tracing.signals import Signals


def period_bounds(now: float, period: str) -> tuple[float, float]:
    """The UTC ``day``, ``week`` (from Monday) or ``month`` around ``now``: ``(start, end)`` in epoch seconds."""
    at = datetime.fromtimestamp(now, UTC)
    day = at.replace(hour=0, minute=0, second=0, microsecond=0)
    if period == "day":
        start, end = day, day + timedelta(days=1)
    elif period == "week":
        start = day - timedelta(days=day.weekday())
        end = start + timedelta(days=7)
    else:
        start = day.replace(day=1)
        end = (start + timedelta(days=32)).replace(day=1)
    return start.timestamp(), end.timestamp()


class BudgetForecastCondition:
    """The ``budget_forecast`` rule kind (see :class:`lmdeck.protocol.alerts.BudgetForecastSpec`)."""

    def read(self, signals: Signals, rule: AlertRuleSpec, now: float) -> list[Reading]:
        spec = rule.budget
        assert spec is not None  # the rule's validator requires it
        start, end = period_bounds(now, spec.period)
        budget_micros = spec.budget_usd * 1_000_000
        spent = {_key(t.group): t for t in group_totals(signals, rule.signal, start, now)}
        recent = {_key(t.group): t for t in group_totals(signals, rule.signal, now - spec.lookback_s, now)}
        readings = []
        for key, totals in spent.items():
            rate = recent[key].cost_micros / spec.lookback_s if key in recent else 0.0  # micro-dollars per second
            forecast = totals.cost_micros + rate * (end - now)
            readings.append(
                Reading(
                    group=totals.group,
                    value=forecast / 1_000_000,
                    active=forecast > budget_micros,
                    cleared=forecast <= budget_micros,
                    summary=(
                        f"spend forecast ${forecast / 1e6:.2f} by the end of the {spec.period} exceeds the budget "
                        f"${spec.budget_usd:.2f} (spent ${totals.cost_micros / 1e6:.2f}, "
                        f"${rate * 3600 / 1e6:.2f}/h over the last {spec.lookback_s}s){group_label(totals.group)}"
                    ),
                    detail={
                        "spent_usd": totals.cost_micros / 1e6,
                        "rate_usd_per_hour": rate * 3600 / 1e6,
                        "budget_usd": spec.budget_usd,
                        "period_end": end,
                    },
                )
            )
        return readings


def _key(group: dict[str, object]) -> str:
    return json.dumps(group, sort_keys=True, default=str)

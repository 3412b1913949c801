"""Spend reports: the cost recorded on traces, grouped by key, team, user, route, tag or model.

    report = SpendReports(db).report(by="team", period="month", now=time.time())
    for row in report.rows:
        print(row.group, row.cost_micros, row.requests)

Costs come from the trace store, so a report covers every gateway process
writing to it. Every report reads through :class:`~lmdeck.tracing.signals.Signals`
(exact for any window, no scan of the traces): by key, team, route and model
from the trace rollups, by user and by tag from the breakdowns the store writer
keeps beside them (:mod:`lmdeck.tracing.breakdowns`). They are summed in whole micro-dollars (exact) and shown in
dollars only in :meth:`Report.to_dict`. A ``team_id`` narrows a report to one team (what a non-admin
caller is shown).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from sqlalchemy.exc import DBAPIError

from lmdeck.db import Database
from lmdeck.money import dollars
from lmdeck.policy.budgets import window_of
from lmdeck.protocol.access import GroupBy, Period
from lmdeck.tracing.breakdowns import Dimension
from lmdeck.tracing.signals import Signals

#: The rollup dimension of each grouping the rollups answer.
ROLLUP_DIMENSIONS: dict[str, str] = {"key": "key_id", "team": "team_id", "route": "route", "model": "model"}
#: The breakdown of each grouping the rollups do not answer (:mod:`lmdeck.tracing.breakdowns`).
BREAKDOWN_DIMENSIONS: dict[str, Dimension] = {"user": "user", "tag": "tag"}


@dataclass(frozen=True)
class SpendRow:
    group: str | None
    cost_micros: int
    requests: int
    input_tokens: int
    output_tokens: int
    #: What the response cache did for the group; None where it is not counted (by user, by tag).
    cache_hits: int | None = None
    saved_tokens: int | None = None
    saved_micros: int | None = None

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "group": self.group,
            "cost": dollars(self.cost_micros),
            "cost_micros": self.cost_micros,
            "requests": self.requests,
            "input_tokens": self.input_tokens,
            "output_tokens": self.output_tokens,
        }
        if self.cache_hits is not None:
            out["cache_hits"] = self.cache_hits
            out["cache_hit_rate"] = self.cache_hits / self.requests if self.requests else 0.0
            out["saved_tokens"] = self.saved_tokens
            out["saved"] = dollars(self.saved_micros or 0)
            out["saved_micros"] = self.saved_micros
        return out


@dataclass(frozen=True)
class Report:
    by: str
    period: str
    since: float
    until: float | None
    rows: list[SpendRow] = field(default_factory=list)
    #: Every request's cost counted once (a request with two tags is in two tag rows).
    total_cost_micros: int = 0
    #: What the response cache saved in the window, every request counted once.
    total_saved_micros: int = 0

    def to_dict(self) -> dict[str, Any]:
        return {
            "by": self.by,
            "period": self.period,
            "since": self.since,
            "until": self.until,
            "total_cost": dollars(self.total_cost_micros),
            "total_cost_micros": self.total_cost_micros,
            "total_saved": dollars(self.total_saved_micros),
            "total_saved_micros": self.total_saved_micros,
            "data": [r.to_dict() for r in self.rows],
        }


class SpendReports:
    """Reads spend from the trace store (blocking: run it off the event loop)."""

    def __init__(self, db: Database, *, minute_days: int | None = 30) -> None:
        self.db = db
        self.signals = Signals(db, minute_days=minute_days)

    def report(
        self,
        *,
        by: GroupBy,
        period: Period,
        now: float,
        since: float | None = None,
        until: float | None = None,
        team_id: str | None = None,
    ) -> Report:
        start = window_of(period, now)[0] if since is None else since
        where = {"team_id": team_id} if team_id is not None else {}
        try:
            if by in ROLLUP_DIMENSIONS:
                dimension = ROLLUP_DIMENSIONS[by]
                groups = self.signals.totals(by=(dimension,), since=start, until=until, where=where)
                total = sum(g.cost_micros for g in groups)
                saved = sum(g.saved_micros for g in groups)
            else:
                dimension = BREAKDOWN_DIMENSIONS[by]
                groups = self.signals.breakdown(dimension, since=start, until=until, team_id=team_id)
                # A trace with two tags is in two tag rows: the total counts each request once.
                overall = self.signals.totals(since=start, until=until, where=where)
                total = sum(g.cost_micros for g in overall)
                saved = sum(g.saved_micros for g in overall)
        except DBAPIError:
            groups, total, saved = [], 0, 0
        counted = by in ROLLUP_DIMENSIONS  # the breakdowns keep no cache counters
        rows = [
            SpendRow(
                group=g.group[dimension],
                cost_micros=g.cost_micros,
                requests=g.requests,
                input_tokens=g.input_tokens,
                output_tokens=g.output_tokens,
                cache_hits=g.cache_hits if counted else None,
                saved_tokens=g.saved_tokens if counted else None,
                saved_micros=g.saved_micros if counted else None,
            )
            for g in groups
        ]
        rows.sort(key=lambda r: (-r.cost_micros, str(r.group)))
        return Report(
            by=by, period=period, since=start, until=until, rows=rows, total_cost_micros=total, total_saved_micros=saved
        )


def spend_report(db: Database, options: dict[str, Any], minute_days: int | None = 30) -> Report:
    """``SpendReports(db).report(**options)``: the job the analytics pool runs (in a worker process);
    ``minute_days`` is ``tracing.retention.minute_days``."""
    return SpendReports(db, minute_days=minute_days).report(**options)

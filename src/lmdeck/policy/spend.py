"""Spend reports: the cost recorded on traces, grouped by key, team, user, route, tag or model.

    report = SpendReports(db).report(by="team", period="month", now=time.time())
    for row in report.rows:
        print(row.group, row.cost_micros, row.requests)

Costs come from the trace store, so a report covers every gateway process
writing to it. Reports by key, team, route and model read the trace rollups
through :class:`~lmdeck.tracing.signals.Signals` (exact for any window, no scan
of the traces); by user and by tag, which are not rollup dimensions, they read
the traces. They are summed in whole micro-dollars (exact) and shown in
dollars only in :meth:`Report.to_dict`. A ``team_id`` narrows a report to one team (what a non-admin
caller is shown).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import text
from sqlalchemy.exc import DBAPIError

from lmdeck.db import Database
from lmdeck.money import dollars
from lmdeck.policy.budgets import window_of
from lmdeck.protocol.access import GroupBy, Period
from lmdeck.tracing.signals import Signals

#: The rollup dimension of each grouping the rollups answer.
ROLLUP_DIMENSIONS: dict[str, str] = {"key": "key_id", "team": "team_id", "route": "route", "model": "model"}

#: The traces column each grouping reads; tags live in their own table.
GROUP_COLUMNS: dict[str, str] = {
    "key": "traces.key_id",
    "team": "traces.team_id",
    "user": "traces.user_id",
    "route": "traces.route",
    "model": "traces.upstream_model",
    "tag": "trace_tags.tag",
}


@dataclass(frozen=True)
class SpendRow:
    group: str | None
    cost_micros: int
    requests: int
    input_tokens: int
    output_tokens: int

    def to_dict(self) -> dict[str, Any]:
        return {
            "group": self.group,
            "cost": dollars(self.cost_micros),
            "cost_micros": self.cost_micros,
            "requests": self.requests,
            "input_tokens": self.input_tokens,
            "output_tokens": self.output_tokens,
        }


@dataclass(frozen=True)
class Report:
    by: str
    period: str
    since: float
    until: float | None
    rows: list[SpendRow] = field(default_factory=list)
    #: Every request's cost counted once (a request with two tags is in two tag rows).
    total_cost_micros: int = 0

    def to_dict(self) -> dict[str, Any]:
        return {
            "by": self.by,
            "period": self.period,
            "since": self.since,
            "until": self.until,
            "total_cost": dollars(self.total_cost_micros),
            "total_cost_micros": self.total_cost_micros,
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
        if by in ROLLUP_DIMENSIONS:
            return self._from_rollups(by, period, start, until, team_id)
        where = ["traces.created_at >= :since"]
        params: dict[str, Any] = {"since": start}
        if until is not None:
            where.append("traces.created_at < :until")
            params["until"] = until
        if team_id is not None:
            where.append("traces.team_id = :team")
            params["team"] = team_id
        column = GROUP_COLUMNS[by]
        join = " JOIN trace_tags ON trace_tags.record_id = traces.id" if by == "tag" else ""
        sql = (
            f"SELECT {column}, SUM(traces.cost_micros), COUNT(*), SUM(traces.input_tokens), SUM(traces.output_tokens) "
            f"FROM traces{join} WHERE {' AND '.join(where)} GROUP BY {column} ORDER BY 2 DESC"
        )
        total_sql = f"SELECT SUM(traces.cost_micros) FROM traces WHERE {' AND '.join(where)}"
        try:
            with self.db.engine.connect() as conn:
                rows = [
                    SpendRow(
                        group=r[0],
                        cost_micros=int(r[1] or 0),
                        requests=int(r[2]),
                        input_tokens=int(r[3] or 0),
                        output_tokens=int(r[4] or 0),
                    )
                    for r in conn.execute(text(sql), params)
                ]
                total = int(conn.execute(text(total_sql), params).scalar() or 0)
        except DBAPIError:
            rows, total = [], 0
        return Report(by=by, period=period, since=start, until=until, rows=rows, total_cost_micros=total)

    def _from_rollups(self, by: GroupBy, period: Period, since: float, until: float | None, team: str | None) -> Report:
        where = {"team_id": team} if team is not None else {}
        try:
            groups = self.signals.totals(by=(ROLLUP_DIMENSIONS[by],), since=since, until=until, where=where)
        except DBAPIError:
            groups = []
        rows = [
            SpendRow(
                group=g.group[ROLLUP_DIMENSIONS[by]],
                cost_micros=g.cost_micros,
                requests=g.requests,
                input_tokens=g.input_tokens,
                output_tokens=g.output_tokens,
            )
            for g in groups
        ]
        rows.sort(key=lambda r: (-r.cost_micros, str(r.group)))
        total = sum(r.cost_micros for r in rows)
        return Report(by=by, period=period, since=since, until=until, rows=rows, total_cost_micros=total)


def spend_report(db: Database, options: dict[str, Any], minute_days: int | None = 30) -> Report:
    """``SpendReports(db).report(**options)``: the job the analytics pool runs (in a worker process);
    ``minute_days`` is ``tracing.retention.minute_days``."""
    return SpendReports(db, minute_days=minute_days).report(**options)

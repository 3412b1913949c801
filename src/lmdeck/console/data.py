"""What the console reads from the trace store's aggregates, scoped as the ``/api/traces`` routes scope it.

    totals, series = await trace_summaries(
        request, user.principal, [SummaryQuery(since=now - 3600), SummaryQuery(since=now - 3600, step=60)]
    )

Aggregates come from :class:`~lmdeck.tracing.signals.Signals` (the rollups) in the analytics pool,
never from a scan of the traces; a caller of one team sees only that team's rows.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request

from lmdeck.app.routes.traces import team_scope
from lmdeck.app.services import analytics, gateway_of, trace_store_of
from lmdeck.db import Database
from lmdeck.pipeline.principal import Principal
from lmdeck.tracing.signals import Signals, Totals
from lmdeck.tracing.sql_store import SQLTraceStore
from lmdeck.tracing.store import TraceAnalytics


def _name(q: float) -> str:
    return "p" + f"{q * 100:.6f}".rstrip("0").rstrip(".")


def _row(totals: Totals, quantiles: Sequence[float]) -> dict[str, Any]:
    row = totals.to_dict()
    ttft = totals.ttft
    row["ttft_ms"] = {_name(q): (ttft.quantile(q) if ttft is not None else None) for q in quantiles}
    return row


@dataclass(frozen=True)
class SummaryQuery:
    """One aggregate read: totals (``step`` None) or a series of ``step``-second points, grouped ``by``."""

    since: float
    step: int | None = None
    by: tuple[str, ...] = ()
    quantiles: tuple[float, ...] = ()


def summary_rows(
    db: Database, jobs: list[tuple[int | None, dict[str, Any]]], minute_days: int | None
) -> list[list[dict[str, Any]]]:
    """For each ``(step, options)``: totals or a series per group, with latency and time-to-first-token
    quantiles (ms). A module-level function: the analytics pool may run it in another process."""
    signals = Signals(db, minute_days=minute_days)
    out = []
    for step, options in jobs:
        rows = signals.totals(**options) if step is None else signals.series(step=step, **options)
        out.append([_row(r, options.get("quantiles", ())) for r in rows])
    return out


async def trace_summaries(
    request: Request, principal: Principal, queries: Sequence[SummaryQuery]
) -> list[list[dict[str, Any]]]:
    """Rows as ``GET /api/traces/summary`` gives them (plus ``ttft_ms``) for each query, in one analytics
    job, limited to what ``principal`` may see (a caller of one team: that team's rows only).

    Raises :class:`~lmdeck.protocol.APIError` 503 when the analytics pool is busy or the job timed out.
    """
    scope = team_scope(principal)
    where: dict[str, Any] = {} if scope.all_teams else {"team_id": scope.team_id}
    jobs: list[tuple[int | None, dict[str, Any]]] = [
        (q.step, {"by": q.by, "since": q.since, "until": None, "where": where, "quantiles": q.quantiles})
        for q in queries
    ]
    store = trace_store_of(request)
    if isinstance(store, TraceAnalytics) and type(store) is not SQLTraceStore:
        engine: TraceAnalytics = store

        def read() -> list[list[dict[str, Any]]]:
            return [
                [r.to_dict() for r in (engine.totals(**o) if step is None else engine.series(step=step, **o))]
                for step, o in jobs
            ]

        return await run_in_threadpool(read)
    minute_days = gateway_of(request).settings.tracing.retention.minute_days
    return await analytics(request, summary_rows, jobs, minute_days)

"""Signals: time series and group-bys over the trace rollups, exact for any window.

    signals = Signals(db)
    signals.totals(by=("route",), since=t0, until=t1)                     # [Totals(group={"route": ...}, ...)]
    signals.totals(by=("team_id",), since=t0, where={"route": "demo"})
    signals.series(step=3600, by=("route",), since=t0, until=t1, quantiles=(0.5, 0.95, 0.99))
    signals.series(step=60, by=("target",), since=now - 3600, until=now)  # error rate per target per minute
    signals.breakdown("user", since=t0, team_id="team_1")                # spend per user (or per "tag")

This is the one reader of :mod:`lmdeck.tracing.rollups` and
:mod:`lmdeck.tracing.breakdowns`: the spend API, budgets' starting spend, the
traces summary and anything that charts or alerts on traffic go through it,
never through a scan of ``traces``.

A window ``[since, until)`` is cut into whole days, then whole hours, then
whole minutes, read from those rollups; the slivers under a minute at either
end (when ``since`` or ``until`` is not on a minute) are read from the raw
traces by their ``created_at`` index. A query that groups or filters by more
than the route's dimensions reads the full level, which has no minutes: its
slivers are those under an hour. Counts, tokens and cost are therefore
exact for any window; quantiles merge the sketches (within
:data:`~lmdeck.tracing.sketch.RELATIVE_ACCURACY`). Minute rollups and raw traces
are pruned after ``minute_days`` (see :mod:`lmdeck.tracing.retention`): an end of
a window older than that is moved out to the whole hour around it, so it is
read from hours and days (to the hour) rather than from data that is gone.

Every method is synchronous and may block: callers off the event loop run it
in the analytics pool (:mod:`lmdeck.tracing.analytics`).
"""

from __future__ import annotations

import math
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import ColumnElement, Select, and_, func, select

from lmdeck.db import Database
from lmdeck.tracing.breakdowns import COUNTERS as BREAKDOWN_COUNTERS
from lmdeck.tracing.breakdowns import DIMENSIONS as BREAKDOWN_DIMENSIONS
from lmdeck.tracing.breakdowns import GRAINS as BREAKDOWN_GRAINS
from lmdeck.tracing.breakdowns import Dimension, raw_source, trace_breakdowns
from lmdeck.tracing.breakdowns import counters_of as breakdown_counters
from lmdeck.tracing.rollups import (
    COUNTERS,
    DAY,
    DIMENSIONS,
    FULL,
    HOUR,
    LEVEL_GRAINS,
    MINUTE,
    ROUTE,
    ROUTE_DIMENSIONS,
    counters_of,
    dimensions_of,
    trace_rollups,
)
from lmdeck.tracing.schema import trace_tags, traces
from lmdeck.tracing.sketch import Sketch

#: The ``traces`` expression of each rollup dimension, for the raw slivers of a window.
_RAW_DIMENSION: dict[str, Any] = {
    "route": traces.c.route,
    "target": traces.c.target,
    "model": traces.c.upstream_model,
    "prompt_name": traces.c.prompt_name,
    "prompt_version": traces.c.prompt_version,
    "team_id": traces.c.team_id,
    "key_id": traces.c.key_id,
}


class SignalError(ValueError):
    """A signal query cannot be answered as asked; ``param`` names what to change."""

    def __init__(self, param: str, message: str) -> None:
        super().__init__(f"{param}: {message}")
        self.param = param
        self.detail = message

    def __reduce__(self) -> tuple[Any, ...]:
        # Raised in an analytics worker process, it crosses back pickled.
        return (SignalError, (self.param, self.detail))


@dataclass
class Totals:
    """Counters of one group (and one step of a series: ``bucket``, epoch seconds, else None)."""

    group: dict[str, Any]
    bucket: int | None = None
    requests: int = 0
    errors: int = 0
    input_tokens: int = 0
    output_tokens: int = 0
    cached_tokens: int = 0
    cache_write_tokens: int = 0
    cost_micros: int = 0
    cache_hits: int = 0
    guardrail_actions: int = 0
    saved_tokens: int = 0
    saved_micros: int = 0
    latency_ms_sum: float = 0.0
    latency: Sketch | None = None
    ttft: Sketch | None = None
    quantiles: dict[str, float | None] = field(default_factory=dict)

    @property
    def error_rate(self) -> float:
        return self.errors / self.requests if self.requests else 0.0

    @property
    def mean_latency_ms(self) -> float | None:
        return self.latency_ms_sum / self.requests if self.requests else None

    @property
    def cache_hit_rate(self) -> float:
        """Share of requests answered from the cache, in [0, 1]."""
        return self.cache_hits / self.requests if self.requests else 0.0

    @property
    def guardrail_action_rate(self) -> float:
        """Guardrail actions (blocks, masks, flags) per request."""
        return self.guardrail_actions / self.requests if self.requests else 0.0

    @property
    def mean_output_tokens(self) -> float | None:
        """Output length: completion tokens per request."""
        return self.output_tokens / self.requests if self.requests else None

    def add(self, counters: Sequence[Any], latency_sum: float) -> None:
        for name, value in zip(COUNTERS, counters, strict=True):
            setattr(self, name, getattr(self, name) + int(value or 0))
        self.latency_ms_sum += float(latency_sum or 0.0)

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"group": self.group}
        if self.bucket is not None:
            out["bucket"] = self.bucket
        out.update({name: getattr(self, name) for name in COUNTERS})
        out["error_rate"] = self.error_rate
        out["mean_latency_ms"] = self.mean_latency_ms
        if self.quantiles:
            out["latency_ms"] = self.quantiles
        return out


@dataclass(frozen=True)
class Piece:
    """One part of a window: ``[start, end)`` read at ``grain`` seconds (0: the raw traces); end None: open."""

    grain: int
    start: float
    end: float | None


def plan(since: float, until: float | None, grains: Sequence[int] = LEVEL_GRAINS[ROUTE]) -> list[Piece]:
    """``[since, until)`` as whole buckets of the coarsest grains that fit, and raw slivers at the edges.

    >>> [(p.grain, p.start, p.end) for p in plan(30.0, 7230.0)]
    [(0, 30.0, 60.0), (60, 60.0, 3600.0), (3600, 3600.0, 7200.0), (0, 7200.0, 7230.0)]
    """
    if until is not None and until <= since:
        return []
    if not grains:
        return [Piece(0, since, until)]
    grain, finer = grains[-1], grains[:-1]
    first = math.ceil(since / grain) * grain
    last = math.floor(until / grain) * grain if until is not None else None
    if last is not None and first >= last:
        return plan(since, until, finer)
    pieces = plan(since, first, finer) if since < first else []
    pieces.append(Piece(grain, first, last))
    if last is not None and until is not None and last < until:
        pieces.extend(plan(last, until, finer))
    return pieces


def _check_dimensions(names: Iterable[str], param: str) -> None:
    for name in names:
        if name not in DIMENSIONS:
            raise SignalError(param, f"unknown dimension {name!r}; one of {', '.join(DIMENSIONS)}")


class Signals:
    """Queries over ``trace_rollups`` (see the module docs); blocking."""

    def __init__(self, db: Database, *, minute_days: int | None = 30, clock: Any = time.time) -> None:
        self.db = db
        #: How long minute rollups and raw traces are kept (``tracing.retention``); None: forever.
        self.minute_days = minute_days
        self.clock = clock

    # -- the public queries ------------------------------------------------------------------

    def totals(
        self,
        *,
        by: Sequence[str] = (),
        since: float,
        until: float | None = None,
        where: Mapping[str, Any] | None = None,
        quantiles: Sequence[float] = (),
    ) -> list[Totals]:
        """One :class:`Totals` per group of ``by`` over ``[since, until)``, most requests first.

        ``where`` holds exact matches on dimensions; ``quantiles`` (each in [0, 1]) adds the
        latency quantiles of each group, in ms, under ``"p50"``-style names.
        """
        return self._run(by=by, since=since, until=until, where=where or {}, step=None, quantiles=quantiles)

    def series(
        self,
        *,
        step: int,
        by: Sequence[str] = (),
        since: float,
        until: float | None = None,
        where: Mapping[str, Any] | None = None,
        quantiles: Sequence[float] = (),
    ) -> list[Totals]:
        """:class:`Totals` per group and step (``bucket``: the step's start), ordered by bucket.

        ``step`` is a whole number of minutes (seconds, a multiple of 60); ``since`` is rounded down to
        a step. Steps with no traffic are left out.
        """
        if step < MINUTE or step % MINUTE:
            raise SignalError("step", f"must be a whole number of minutes in seconds (60, 3600, ...), got {step}")
        since = math.floor(since / step) * step
        return self._run(by=by, since=since, until=until, where=where or {}, step=step, quantiles=quantiles)

    def breakdown(
        self,
        dimension: Dimension,
        *,
        since: float,
        until: float | None = None,
        team_id: str | None = None,
    ) -> list[Totals]:
        """One :class:`Totals` per user (``dimension="user"``) or tag (``"tag"``) over ``[since, until)``, most
        cost first; ``team_id`` keeps one team's traces. Only the counters of
        :data:`lmdeck.tracing.breakdowns.COUNTERS` are filled (no cached tokens, cache hits or latency).

        Read from ``trace_breakdowns`` (whole hours and days) and the raw traces (the slivers under an
        hour at either end): exact for any window. A trace with two tags counts in both.
        """
        if dimension not in BREAKDOWN_DIMENSIONS:
            raise SignalError("dimension", f"one of {', '.join(BREAKDOWN_DIMENSIONS)}, got {dimension!r}")
        since, until = self._kept(since, until, HOUR)
        groups: dict[Any, Totals] = {}

        def fold(value: Any, counters: Sequence[Any]) -> None:
            totals = groups.get(value)
            if totals is None:
                totals = groups[value] = Totals({dimension: value})
            for name, count in zip(BREAKDOWN_COUNTERS, counters, strict=True):
                setattr(totals, name, getattr(totals, name) + int(count or 0))

        b = trace_breakdowns.c
        with self.db.engine.connect() as conn:
            for piece in plan(since, until, BREAKDOWN_GRAINS):
                if piece.grain:
                    conditions = [b.dimension == dimension, b.grain == piece.grain, b.bucket >= piece.start]
                    if piece.end is not None:
                        conditions.append(b.bucket < piece.end)
                    if team_id is not None:
                        conditions.append(b.team_id == team_id)
                    stmt = select(b.value, *(func.sum(b[n]) for n in BREAKDOWN_COUNTERS)).where(and_(*conditions))
                    for row in conn.execute(stmt.group_by(b.value)):
                        fold(row[0], row[1:])
                else:
                    for row in conn.execute(self._raw_breakdown(dimension, piece, team_id)):
                        fold(row.value, breakdown_counters(row._mapping))
        return sorted(groups.values(), key=lambda t: (-t.cost_micros, str(t.group[dimension])))

    # -- the work ------------------------------------------------------------------------------

    def _kept(self, since: float, until: float | None, grain: int) -> tuple[float, float | None]:
        """``since`` and ``until`` moved out to a whole ``grain`` where the raw traces and minute rollups
        that a sliver would read are pruned already."""
        if self.minute_days is not None:
            kept_from = self.clock() - self.minute_days * DAY
            if since < kept_from:
                since = math.floor(since / grain) * grain
            if until is not None and until < kept_from:
                until = math.ceil(until / grain) * grain
        return since, until

    @staticmethod
    def _raw_breakdown(dimension: Dimension, piece: Piece, team_id: str | None) -> Select[Any]:
        t = traces.c
        conditions: list[ColumnElement[bool]] = [t.created_at >= piece.start]
        if piece.end is not None:
            conditions.append(t.created_at < piece.end)
        if team_id is not None:
            conditions.append(t.team_id == team_id)
        stmt = select(*raw_source(dimension))
        if dimension == "tag":
            stmt = stmt.select_from(traces.join(trace_tags, trace_tags.c.record_id == t.id))
        return stmt.where(and_(*conditions))

    def _run(
        self,
        *,
        by: Sequence[str],
        since: float,
        until: float | None,
        where: Mapping[str, Any],
        step: int | None,
        quantiles: Sequence[float],
    ) -> list[Totals]:
        since, until = self._kept(since, until, HOUR)
        _check_dimensions(by, "by")
        _check_dimensions(where, "where")
        for q in quantiles:
            if not 0.0 <= q <= 1.0:
                raise SignalError("quantiles", f"each is between 0 and 1, got {q}")
        level = ROUTE if set(by) | set(where) <= ROUTE_DIMENSIONS else FULL
        grains = tuple(g for g in LEVEL_GRAINS[level] if step is None or step % g == 0)
        groups: dict[tuple[Any, ...], Totals] = {}
        sketches = bool(quantiles)
        with self.db.engine.connect() as conn:
            for piece in plan(since, until, grains):
                if piece.grain:
                    rows = conn.execute(self._rollup_select(piece, by, where, step, sketches, level))
                    for row in rows:
                        self._fold(groups, by, row, step, sketches)
                else:
                    for row in conn.execute(self._raw_select(piece, where)):
                        self._fold_raw(groups, by, where, row, step, sketches)
        result = list(groups.values())
        if quantiles:
            for totals in result:
                sketch = totals.latency or Sketch()
                totals.quantiles = {_name(q): sketch.quantile(q) for q in quantiles}
        if step is None:
            result.sort(key=lambda t: (-t.requests, str(list(t.group.values()))))
        else:
            result.sort(key=lambda t: (t.bucket or 0, str(list(t.group.values()))))
        return result

    def _rollup_select(
        self, piece: Piece, by: Sequence[str], where: Mapping[str, Any], step: int | None, sketches: bool, level: int
    ) -> Select[Any]:
        c = trace_rollups.c
        conditions: list[ColumnElement[bool]] = [
            c.level == level,
            c.grain == piece.grain,
            c.bucket >= piece.start,
        ]
        if piece.end is not None:
            conditions.append(c.bucket < piece.end)
        conditions.extend(c[name].is_(None) if value is None else c[name] == value for name, value in where.items())
        keys: list[Any] = [c[name] for name in by]
        if step is not None:
            keys.append(c.bucket - c.bucket % step)
        if sketches:
            # Sketches merge in Python: one row per stored rollup.
            return select(*keys, *(c[n] for n in COUNTERS), c.latency_ms_sum, c.latency_sketch, c.ttft_sketch).where(
                and_(*conditions)
            )
        sums = [func.sum(c[n]) for n in COUNTERS]
        return select(*keys, *sums, func.sum(c.latency_ms_sum)).where(and_(*conditions)).group_by(*keys)

    def _raw_select(self, piece: Piece, where: Mapping[str, Any]) -> Select[Any]:
        t = traces.c
        conditions: list[ColumnElement[bool]] = [t.created_at >= piece.start]
        if piece.end is not None:
            conditions.append(t.created_at < piece.end)
        for name, value in where.items():
            if name in _RAW_DIMENSION:
                column = _RAW_DIMENSION[name]
                conditions.append(column.is_(None) if value is None else column == value)
        return select(
            t.route,
            t.target,
            t.upstream_model,
            t.prompt_name,
            t.prompt_version,
            t["metadata"],
            t.team_id,
            t.key_id,
            t.status_code,
            t.created_at,
            t.input_tokens,
            t.output_tokens,
            t.cached_tokens,
            t.cache_write_tokens,
            t.cost_micros,
            t.cache_hit,
            t.saved_tokens,
            t.saved_micros,
            t.latency_ms,
            t.ttft_ms,
        ).where(and_(*conditions))

    @staticmethod
    def _group(
        groups: dict[tuple[Any, ...], Totals], by: Sequence[str], key: tuple[Any, ...], bucket: int | None
    ) -> Totals:
        full = (*key, bucket)
        totals = groups.get(full)
        if totals is None:
            totals = groups[full] = Totals(dict(zip(by, key, strict=True)), bucket)
        return totals

    def _fold(
        self, groups: dict[tuple[Any, ...], Totals], by: Sequence[str], row: Any, step: int | None, sketches: bool
    ) -> None:
        n = len(by)
        bucket = int(row[n]) if step is not None else None
        at = n + (step is not None)
        totals = self._group(groups, by, tuple(row[:n]), bucket)
        totals.add(row[at : at + len(COUNTERS)], row[at + len(COUNTERS)])
        if sketches:
            if totals.latency is None:
                totals.latency, totals.ttft = Sketch(), Sketch()
            totals.latency.merge(Sketch.loads(row[at + len(COUNTERS) + 1]))
            if totals.ttft is not None:
                totals.ttft.merge(Sketch.loads(row[at + len(COUNTERS) + 2]))

    def _fold_raw(
        self,
        groups: dict[tuple[Any, ...], Totals],
        by: Sequence[str],
        where: Mapping[str, Any],
        row: Any,
        step: int | None,
        sketches: bool,
    ) -> None:
        m = row._mapping
        dims = dict(zip(DIMENSIONS, dimensions_of(m), strict=True))
        if any(dims[name] != value for name, value in where.items()):
            return
        bucket = int(m["created_at"] // step) * step if step is not None else None
        totals = self._group(groups, by, tuple(dims[name] for name in by), bucket)
        totals.add(counters_of(m), m["latency_ms"])
        if sketches:
            if totals.latency is None:
                totals.latency, totals.ttft = Sketch(), Sketch()
            totals.latency.add(float(m["latency_ms"]))
            if m["ttft_ms"] is not None and totals.ttft is not None:
                totals.ttft.add(float(m["ttft_ms"]))


def summarize(
    db: Database, step: int | None, options: dict[str, Any], minute_days: int | None = 30
) -> list[dict[str, Any]]:
    """:meth:`Signals.totals` (``step`` None) or :meth:`Signals.series` as JSON-ready rows: the job the
    analytics pool runs (in a worker process)."""
    signals = Signals(db, minute_days=minute_days)
    rows = signals.totals(**options) if step is None else signals.series(step=step, **options)
    return [row.to_dict() for row in rows]


def _name(q: float) -> str:
    """``0.95`` -> ``"p95"``, ``0.999`` -> ``"p99.9"``."""
    return "p" + f"{q * 100:.6f}".rstrip("0").rstrip(".")


__all__ = ["DAY", "Piece", "SignalError", "Signals", "Totals", "plan"]

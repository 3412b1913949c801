"""Retention hooks: raw traces go after ``raw_days``, rollups outlive them (``rollup_days``).

    policy = Retention(raw_days=30, minute_days=30, rollup_days=396)     # tracing.retention's defaults
    pruned = prune(db, policy, now=time.time())
    pruned.traces, pruned.minute_rollups, pruned.rollups                  # rows deleted

The serving process runs :func:`prune` every ``tracing.retention.prune_interval_s``
(:class:`~lmdeck.tracing.retention_job.RetentionJob`); ``lmdeck traces prune`` runs
it once. Cut-offs fall on UTC day boundaries, so a
rollup bucket never holds some traces that were pruned and some that were not,
and :func:`~lmdeck.tracing.rollups.rebuild` (which recomputes only the days the
raw traces still cover) keeps the older rollups as they are.

Deleting a trace deletes its tags and its search entry. Hour and day rollups
(and the breakdowns by user and tag) keep spend, error and latency history for
``rollup_days`` (13 months by default); minute rollups, read only for windows that do not start or end on an
hour, are kept ``minute_days``.
"""

from __future__ import annotations

import math
import threading
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial

from sqlalchemy import Connection, bindparam, delete, select, text

from lmdeck.db import Database
from lmdeck.settings import TraceRetentionSettings
from lmdeck.tracing.breakdowns import prune as prune_breakdowns
from lmdeck.tracing.rollups import DAY, HOUR, MINUTE
from lmdeck.tracing.rollups import prune as prune_rollups
from lmdeck.tracing.schema import trace_tags, traces

_CHUNK = 5000


@dataclass(frozen=True)
class Retention:
    """How long each kind of trace data is kept, in days; None keeps it forever."""

    raw_days: int | None = 30
    minute_days: int | None = 30
    rollup_days: int | None = 396

    @classmethod
    def from_settings(cls, settings: TraceRetentionSettings) -> Retention:
        """The policy ``tracing.retention`` sets."""
        return cls(settings.raw_days, settings.minute_days, settings.rollup_days)


@dataclass(frozen=True)
class Pruned:
    """Rows deleted by one :func:`prune`."""

    traces: int = 0
    minute_rollups: int = 0
    rollups: int = 0
    #: Hour and day breakdowns by user and tag (:mod:`lmdeck.tracing.breakdowns`).
    breakdowns: int = 0


def cutoff(days: int, now: float) -> float:
    """The start of the UTC day ``days`` days before ``now``'s (epoch seconds)."""
    return float(math.floor(now / DAY) * DAY - days * DAY)


def _delete_traces(conn: Connection, before: float) -> int:
    """Up to ``_CHUNK`` traces created before ``before``, with their tags and search entries; rows deleted."""
    ids = [row[0] for row in conn.execute(select(traces.c.id).where(traces.c.created_at < before).limit(_CHUNK))]
    if not ids:
        return 0
    conn.execute(delete(trace_tags).where(trace_tags.c.record_id.in_(ids)))
    params = {"ids": ids}
    if conn.dialect.name == "sqlite":
        stmt = text("DELETE FROM trace_search WHERE rowid IN (SELECT rowid FROM traces WHERE id IN :ids)")
    else:
        stmt = text("DELETE FROM trace_search WHERE record_id IN :ids")
    conn.execute(stmt.bindparams(bindparam("ids", expanding=True)), params)
    conn.execute(delete(traces).where(traces.c.id.in_(ids)))
    return len(ids)


def _chunks(db: Database, delete_some: Callable[[Connection], int], stop: threading.Event | None) -> int:
    """``delete_some`` (at most ``_CHUNK`` rows) in one transaction after another until it deletes fewer, or
    ``stop`` is set; rows deleted. Each transaction is short, so the store writer waits for none for long."""
    deleted = 0
    while stop is None or not stop.is_set():
        with db.engine.begin() as conn:
            count = delete_some(conn)
        deleted += count
        if count < _CHUNK:
            break
    return deleted


def prune(db: Database, policy: Retention, *, now: float, stop: threading.Event | None = None) -> Pruned:
    """Delete what ``policy`` no longer keeps, in chunks of at most ``_CHUNK`` rows, one transaction each;
    the rows deleted. ``stop`` (set by another thread) ends it between two chunks."""
    deleted_traces = minutes = rollups = breakdowns = 0
    if policy.raw_days is not None:
        before = cutoff(policy.raw_days, now)
        deleted_traces = _chunks(db, lambda conn: _delete_traces(conn, before), stop)
    if policy.minute_days is not None:
        before = cutoff(policy.minute_days, now)
        minutes = _chunks(db, lambda conn: prune_rollups(conn, MINUTE, before, limit=_CHUNK), stop)
    if policy.rollup_days is not None:
        before = cutoff(policy.rollup_days, now)
        for grain in (HOUR, DAY):
            rollups += _chunks(db, partial(prune_rollups, grain=grain, before=before, limit=_CHUNK), stop)
        breakdowns = _chunks(db, lambda conn: prune_breakdowns(conn, before, limit=_CHUNK), stop)
    return Pruned(traces=deleted_traces, minute_rollups=minutes, rollups=rollups, breakdowns=breakdowns)

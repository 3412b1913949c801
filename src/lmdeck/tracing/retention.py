"""Retention hooks: raw traces go after ``raw_days``, rollups outlive them (``rollup_days``).

    policy = Retention(raw_days=30, minute_days=30, rollup_days=396)     # tracing.retention's defaults
    pruned = prune(db, policy, now=time.time(), stored=RetentionPolicyStore(db).list())
    pruned.traces, pruned.bodies, pruned.minute_rollups, pruned.rollups   # rows deleted, bodies cleared
    pruned.by_policy                                                      # (Expired(policy, traces, bodies), ...)

Per team and per route policies (:mod:`lmdeck.tracing.retention_policies`) give some traces
other ``body_days``/``trace_days``; the traces no policy covers keep the global ``body_days``
and ``raw_days``; a trace on legal hold is kept whatever its age (:mod:`lmdeck.tracing.expiry`).

The serving process runs :func:`prune` every ``tracing.retention.prune_interval_s``
(:class:`~lmdeck.tracing.retention_job.RetentionJob`); ``lmdeck traces prune`` runs
it once. Cut-offs fall on UTC day boundaries, and
:func:`~lmdeck.tracing.rollups.rebuild` recomputes only the days after the newest cut-off that
deleted traces (every trace of those days is still stored), so it keeps the older rollups as they are.

Deleting a trace deletes its tags and its search entry. Spans received over OTLP are kept as
long as the raw traces (``raw_days``, counted from when they arrived). Hour and day rollups
(and the breakdowns by user and tag) keep spend, error and latency history for
``rollup_days`` (13 months by default); minute rollups, read only for windows that do not start or end on an
hour, are kept ``minute_days``.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import partial

from sqlalchemy import Connection, delete, select

from lmdeck.db import Database
from lmdeck.protocol.retention import RetentionPolicySpec
from lmdeck.settings import TraceRetentionSettings
from lmdeck.tracing.breakdowns import prune as prune_breakdowns
from lmdeck.tracing.expiry import Expired, cutoff, expire
from lmdeck.tracing.retention_policies import effective_rules, scope_of
from lmdeck.tracing.rollups import DAY, HOUR, MINUTE
from lmdeck.tracing.rollups import prune as prune_rollups
from lmdeck.tracing.spans import trace_spans

_CHUNK = 5000


@dataclass(frozen=True)
class Retention:
    """How long each kind of trace data is kept, in days; None keeps it forever."""

    raw_days: int | None = 30
    minute_days: int | None = 30
    rollup_days: int | None = 396
    #: Request/response bodies of the traces no per team or route policy covers; None: kept with the trace.
    body_days: int | None = None
    #: Per team and per route policies (:mod:`lmdeck.tracing.retention_policies`) of the config file.
    policies: tuple[RetentionPolicySpec, ...] = ()

    @classmethod
    def from_settings(cls, settings: TraceRetentionSettings) -> Retention:
        """The policy ``tracing.retention`` sets."""
        return cls(
            settings.raw_days,
            settings.minute_days,
            settings.rollup_days,
            body_days=settings.body_days,
            policies=tuple(settings.policies),
        )


@dataclass(frozen=True)
class Pruned:
    """Rows deleted by one :func:`prune`."""

    traces: int = 0
    minute_rollups: int = 0
    rollups: int = 0
    #: Hour and day breakdowns by user and tag (:mod:`lmdeck.tracing.breakdowns`).
    breakdowns: int = 0
    #: Traces whose request/response bodies were cleared (the rows kept).
    bodies: int = 0
    #: Traces deleted and bodies cleared per policy (the global settings under ``tracing.retention``).
    by_policy: tuple[Expired, ...] = ()
    #: Spans received over OTLP (:mod:`lmdeck.tracing.spans`), kept as long as the raw traces.
    spans: int = 0


__all__ = ["Pruned", "Retention", "cutoff", "merged", "prune"]


def _delete_spans(conn: Connection, before: float) -> int:
    """Up to ``_CHUNK`` spans received before ``before``; rows deleted."""
    c = trace_spans.c
    ids = [row[0] for row in conn.execute(select(c.id).where(c.received_at < before).limit(_CHUNK))]
    if ids:
        conn.execute(delete(trace_spans).where(c.id.in_(ids)))
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


def prune(
    db: Database,
    policy: Retention,
    *,
    now: float,
    stop: threading.Event | None = None,
    stored: Sequence[RetentionPolicySpec] = (),
    batch: int | None = None,
) -> Pruned:
    """Delete what ``policy`` (with the ``stored`` per team/route policies, which replace its own of the same
    name or scope) no longer keeps, in chunks of at most ``batch`` (default ``_CHUNK``) rows, one transaction
    each; the rows deleted. Traces on legal hold stay. ``stop`` (set by another thread) ends it between two
    chunks."""
    minutes = rollups = breakdowns = 0
    policies = merged(stored, policy.policies)
    rules = effective_rules(policies, body_days=policy.body_days, trace_days=policy.raw_days)
    expired = tuple(expire(db, rules, now=now, batch=batch or _CHUNK, stop=stop))
    deleted_traces = sum(e.traces for e in expired)
    bodies = sum(e.bodies for e in expired)
    spans = 0
    if policy.raw_days is not None:
        before = cutoff(policy.raw_days, now)
        spans = _chunks(db, lambda conn: _delete_spans(conn, before), stop)
    if policy.minute_days is not None:
        before = cutoff(policy.minute_days, now)
        minutes = _chunks(db, lambda conn: prune_rollups(conn, MINUTE, before, limit=_CHUNK), stop)
    if policy.rollup_days is not None:
        before = cutoff(policy.rollup_days, now)
        for grain in (HOUR, DAY):
            rollups += _chunks(db, partial(prune_rollups, grain=grain, before=before, limit=_CHUNK), stop)
        breakdowns = _chunks(db, lambda conn: prune_breakdowns(conn, before, limit=_CHUNK), stop)
    return Pruned(
        traces=deleted_traces,
        minute_rollups=minutes,
        rollups=rollups,
        breakdowns=breakdowns,
        bodies=bodies,
        by_policy=expired,
        spans=spans,
    )


def merged(
    stored: Sequence[RetentionPolicySpec], configured: Sequence[RetentionPolicySpec]
) -> list[RetentionPolicySpec]:
    """The policies in force: ``stored`` ones, and the ``configured`` ones none of them replaces (by name or
    scope)."""
    names = {p.name for p in stored}
    scopes = {scope_of(p) for p in stored}
    kept = [p for p in configured if p.name not in names and scope_of(p) not in scopes]
    return sorted([*stored, *kept], key=lambda p: p.name)

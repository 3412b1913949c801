"""Expiry of raw traces under retention rules: bodies cleared, whole traces deleted, legal holds kept.

    rules = effective_rules(policies, body_days=7, trace_days=30)       # tracing.retention_policies
    expired = expire(db, rules, now=time.time(), batch=5000)
    expired[0].policy, expired[0].traces, expired[0].bodies             # per rule: rows deleted, bodies cleared
    set_hold(db, record_id, True)                                        # exempt one trace

Each batch is one short transaction of at most ``batch`` traces, so the store writer never waits
long. Deleting a trace deletes its tags and search entry; clearing its bodies sets
``request_body`` and ``response_body`` to NULL, keeps the row (tokens, cost, latency, status) and
rewrites its search entry from what is left. A trace on legal hold is neither. Rollups are
aggregates kept apart from the raw rows, so spend totals do not change; the newest cut-off
that deleted traces is noted (``trace_retention_marks``) so that
:func:`lmdeck.tracing.rollups.rebuild` recomputes only the days whose traces are all still stored.
"""

from __future__ import annotations

import math
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection, bindparam, delete, false, or_, select, text, update

from lmdeck.db import Database
from lmdeck.tracing.retention_policies import Rule
from lmdeck.tracing.schema import trace_tags, traces
from lmdeck.tracing.search import INSERT, search_rows

DAY = 86_400
#: Where the newest cut-off retention deleted traces before is noted.
DELETED_BEFORE = "deleted_before"


def cutoff(days: int, now: float) -> float:
    """The start of the UTC day ``days`` days before ``now``'s (epoch seconds)."""
    return float(math.floor(now / DAY) * DAY - days * DAY)


def not_held() -> Any:
    """True for the traces not on legal hold (``0012_trace_hold``)."""
    return traces.c.legal_hold.is_(False)


@dataclass(frozen=True)
class Expired:
    """What one rule did in one run: traces deleted, traces whose bodies were cleared."""

    policy: str
    traces: int = 0
    bodies: int = 0

    def to_dict(self) -> dict[str, Any]:
        return {"policy": self.policy, "traces": self.traces, "bodies": self.bodies}


def _delete_search(conn: Connection, ids: list[str]) -> None:
    if conn.dialect.name == "sqlite":
        stmt = text("DELETE FROM trace_search WHERE rowid IN (SELECT rowid FROM traces WHERE id IN :ids)")
    else:
        stmt = text("DELETE FROM trace_search WHERE record_id IN :ids")
    conn.execute(stmt.bindparams(bindparam("ids", expanding=True)), {"ids": ids})


def delete_traces(conn: Connection, ids: list[str]) -> int:
    """Delete the traces ``ids`` with their tags and search entries; rows deleted."""
    if not ids:
        return 0
    conn.execute(delete(trace_tags).where(trace_tags.c.record_id.in_(ids)))
    _delete_search(conn, ids)
    conn.execute(delete(traces).where(traces.c.id.in_(ids)))
    return len(ids)


def clear_bodies(conn: Connection, ids: list[str]) -> int:
    """Set the bodies of traces ``ids`` to NULL and rewrite their search entries; traces changed."""
    if not ids:
        return 0
    _delete_search(conn, ids)
    conn.execute(update(traces).where(traces.c.id.in_(ids)).values(request_body=None, response_body=None))
    rowid: Any = text("rowid") if conn.dialect.name == "sqlite" else None
    columns = [traces.c.id, traces.c.error, traces.c.metadata]
    rows = conn.execute(select(*columns, *([rowid] if rowid is not None else [])).where(traces.c.id.in_(ids))).all()
    rowids = {row[0]: (row[3] if rowid is not None else None) for row in rows}
    entries = search_rows(({"id": r[0], "error": r[1], "metadata": r[2]} for r in rows), rowids)
    if entries:
        conn.execute(INSERT[conn.dialect.name], entries)
    return len(rows)


def _note_deleted_before(conn: Connection, before: float) -> None:
    current = conn.execute(
        text("SELECT value FROM trace_retention_marks WHERE name = :n"), {"n": DELETED_BEFORE}
    ).scalar()
    if current is None:
        conn.execute(
            text("INSERT INTO trace_retention_marks (name, value) VALUES (:n, :v)"), {"n": DELETED_BEFORE, "v": before}
        )
    elif before > float(current):
        conn.execute(
            text("UPDATE trace_retention_marks SET value = :v WHERE name = :n"), {"n": DELETED_BEFORE, "v": before}
        )


def deleted_before(conn: Connection) -> float | None:
    """The newest cut-off retention deleted traces before (epoch seconds), or None."""
    value = conn.execute(
        text("SELECT value FROM trace_retention_marks WHERE name = :n"), {"n": DELETED_BEFORE}
    ).scalar()
    return float(value) if value is not None else None


def _batches(db: Database, step: Callable[[Connection], int], batch: int, stop: threading.Event | None) -> int:
    """``step`` (at most ``batch`` rows) in one transaction after another until it does fewer or ``stop`` is set."""
    done = 0
    while stop is None or not stop.is_set():
        with db.engine.begin() as conn:
            count = step(conn)
        done += count
        if count < batch:
            break
    return done


def expire(
    db: Database, rules: Sequence[Rule], *, now: float, batch: int = 5000, stop: threading.Event | None = None
) -> list[Expired]:
    """Delete the traces past their rule's ``trace_days`` and clear the bodies past its ``body_days``, in
    transactions of at most ``batch`` traces; one :class:`Expired` per rule. ``stop`` ends it between batches."""
    if batch < 1:
        raise ValueError("retention needs batch >= 1")
    done: list[Expired] = []
    for rule in rules:
        deleted = cleared = 0
        if rule.trace_days is not None:
            before = cutoff(rule.trace_days, now)
            old = select(traces.c.id).where(rule.condition, traces.c.created_at < before, not_held()).limit(batch)

            def delete_some(conn: Connection, old: Any = old, before: float = before) -> int:
                count = delete_traces(conn, [row[0] for row in conn.execute(old)])
                if count:
                    _note_deleted_before(conn, before)
                return count

            deleted = _batches(db, delete_some, batch, stop)
        if rule.body_days is not None:
            before = cutoff(rule.body_days, now)
            with_body = or_(traces.c.request_body.is_not(None), traces.c.response_body.is_not(None))
            old = select(traces.c.id).where(rule.condition, traces.c.created_at < before, not_held(), with_body)
            old = old.limit(batch)

            def clear_some(conn: Connection, old: Any = old) -> int:
                return clear_bodies(conn, [row[0] for row in conn.execute(old)])

            cleared = _batches(db, clear_some, batch, stop)
        done.append(Expired(rule.name, deleted, cleared))
    return done


def set_hold(db: Database, record_id: str, held: bool) -> bool | None:
    """Put trace ``record_id`` on legal hold (``held``) or release it; whether it was held before, or None
    when no such trace is stored."""
    with db.engine.begin() as conn:
        before = conn.execute(text("SELECT legal_hold FROM traces WHERE id = :id"), {"id": record_id}).first()
        if before is None:
            return None
        conn.execute(text("UPDATE traces SET legal_hold = :h WHERE id = :id"), {"h": held, "id": record_id})
        return bool(before[0])


def held(db: Database, ids: Sequence[str] | None = None) -> list[str]:
    """The ids of the traces on legal hold (among ``ids`` when given)."""
    stmt = select(traces.c.id).where(traces.c.legal_hold.is_(True))
    if ids is not None:
        stmt = stmt.where(traces.c.id.in_(list(ids))) if ids else stmt.where(false())
    with db.engine.connect() as conn:
        return [row[0] for row in conn.execute(stmt.order_by(traces.c.id))]

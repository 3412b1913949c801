"""Traces in SQL through SQLAlchemy Core: SQLite (the default) and PostgreSQL.

    db = Database("sqlite:///.lmdeck/lmdeck.db"); db.migrate()
    store = SQLTraceStore(db)
    store.insert([record])                       # twice is the same as once
    page = store.query(TraceQuery(route="demo"))

The only dialect-specific piece is insert-or-ignore, chosen from
:data:`INSERT_OR_IGNORE` by the engine's dialect name.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

from sqlalchemy import ColumnElement, Select, Table, Text, and_, cast, exists, func, literal_column, or_, select
from sqlalchemy.dialects.postgresql import insert as postgresql_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.sql.dml import Insert

from lmdeck.db import Database
from lmdeck.protocol.traces import TraceRecord
from lmdeck.tracing.breakdowns import Breakdowns
from lmdeck.tracing.breakdowns import apply as apply_breakdowns
from lmdeck.tracing.query import Cursor, TracePage, TraceQuery
from lmdeck.tracing.retention import Pruned, Retention, prune
from lmdeck.tracing.rollups import Rollups, apply, rebuild
from lmdeck.tracing.schema import from_row, tag_rows, to_row, trace_tags, traces
from lmdeck.tracing.search import INSERT as SEARCH_INSERT
from lmdeck.tracing.search import is_common, matches, search_rows
from lmdeck.tracing.signals import Signals, Totals

#: ``INSERT ... ON CONFLICT DO NOTHING`` for each dialect the store runs on.
INSERT_OR_IGNORE: dict[str, Callable[[Table], Insert]] = {
    "sqlite": lambda table: sqlite_insert(table).on_conflict_do_nothing(),
    "postgresql": lambda table: postgresql_insert(table).on_conflict_do_nothing(),
}


def _text_match(column: Any, needle: str) -> ColumnElement[bool]:
    return func.lower(cast(column, Text)).contains(needle.lower(), autoescape=True)


def _conditions(query: TraceQuery, dialect: str = "", *, common: bool = False) -> list[ColumnElement[bool]]:
    c = traces.c
    equal: list[tuple[Any, object]] = [
        (c.route, query.route),
        (c.upstream_model, query.model),
        (c.status_code, query.status),
        (c.key_id, query.key_id),
        (c.team_id, query.team_id),
        (c.user_id, query.user),
        (c.prompt_name, query.prompt),
        (c.prompt_version, query.prompt_version),
        (c["metadata"]["release"].as_string(), query.release),
        (c.request_id, query.request_id),
        (c.trace_id, query.trace_id),
        (c.client_request_id, query.client_request_id),
        (c.client_trace_id, query.client_trace_id),
        (c.session_id, query.session_id),
    ]
    where: list[ColumnElement[bool]] = [column == value for column, value in equal if value is not None]
    if query.without_team:
        where.append(c.team_id.is_(None))
    if query.errors is not None:
        where.append(c.status_code >= 400 if query.errors else c.status_code < 400)
    if query.since is not None:
        where.append(c.created_at >= query.since)
    if query.until is not None:
        where.append(c.created_at < query.until)
    if query.min_latency_ms is not None:
        where.append(c.latency_ms >= query.min_latency_ms)
    if query.tag is not None:
        where.append(exists().where(and_(trace_tags.c.record_id == c.id, trace_tags.c.tag == query.tag)))
    if query.q:
        indexed = matches(query.q, dialect, c.id, common=common)
        if indexed is not None:
            where.append(indexed)
        else:
            columns = (c.error, c["metadata"], c.request_body, c.response_body)
            where.append(or_(*(_text_match(column, query.q) for column in columns)))
    if query.cursor is not None:
        at, last = query.cursor.created_at, query.cursor.id
        where.append(or_(c.created_at < at, and_(c.created_at == at, c.id < last)))
    return where


class SQLTraceStore:
    """The trace store on a :class:`~lmdeck.db.Database` (tables from migration ``0001_traces``).

    >>> store = SQLTraceStore(Database("sqlite:///:memory:"))  # doctest: +SKIP
    """

    def __init__(self, db: Database, *, rollups: bool = True, search: bool = True) -> None:
        dialect = db.engine.dialect.name
        if dialect not in INSERT_OR_IGNORE:
            known = ", ".join(sorted(INSERT_OR_IGNORE))
            raise ValueError(f"traces cannot be stored in {dialect!r}: use a {known} URL for database_url")
        self.db = db
        #: Keep ``trace_rollups`` and ``trace_breakdowns`` up to date with each insert (see
        #: :mod:`lmdeck.tracing.rollups` and :mod:`lmdeck.tracing.breakdowns`).
        self.rollups = rollups
        #: Keep ``trace_search`` up to date with each insert (see :mod:`lmdeck.tracing.search`).
        self.search = search
        self.dialect = dialect
        # The rowid (SQLite) is where the trace's search entry goes.
        rowid: Any = literal_column("rowid") if dialect == "sqlite" else literal_column("NULL")
        self._insert_traces = INSERT_OR_IGNORE[dialect](traces).returning(traces.c.id, rowid)
        self._insert_search = SEARCH_INSERT[dialect]
        self._insert_tags = INSERT_OR_IGNORE[dialect](trace_tags)

    def insert(self, records: Sequence[TraceRecord]) -> None:
        """Store each record unless its id is stored already, and add the ones stored to the rollups,
        in one transaction."""
        if not records:
            return
        unique = list({r.id: r for r in records}.values())
        tags = [row for record in unique for row in tag_rows(record)]
        rows = [to_row(r) for r in unique]
        with self.db.engine.begin() as conn:
            stored: dict[str, Any] = {row[0]: row[1] for row in conn.execute(self._insert_traces, rows)}
            if tags:
                conn.execute(self._insert_tags, tags)
            if self.search and stored:
                found = search_rows((row for row in rows if row["id"] in stored), stored)
                if found:
                    conn.execute(self._insert_search, found)
            if self.rollups and stored:
                # Only the traces this insert stored: one read again after a crash is counted once.
                new = [row for row in rows if row["id"] in stored]
                apply(conn, Rollups.of_rows(new))
                apply_breakdowns(conn, Breakdowns.of_rows(new, (tag for tag in tags if tag["record_id"] in stored)))

    def get(self, id: str) -> TraceRecord | None:
        with self.db.engine.connect() as conn:
            row = conn.execute(select(traces).where(traces.c.id == id)).first()
        return from_row(row) if row is not None else None

    def select(self, query: TraceQuery, *, common: bool = False) -> Select[Any]:
        """The statement :meth:`query` runs (one row more than the limit, to know if a page follows);
        ``common``: ``q`` matches many traces (see :func:`lmdeck.tracing.search.is_common`)."""
        where = _conditions(query, self.dialect, common=common)
        stmt = select(traces).where(and_(*where)) if where else select(traces)
        return stmt.order_by(traces.c.created_at.desc(), traces.c.id.desc()).limit(query.limit + 1)

    def query(self, query: TraceQuery) -> TracePage:
        with self.db.engine.connect() as conn:
            common = bool(query.q) and is_common(conn, query.q or "")
            rows = conn.execute(self.select(query, common=common)).all()
        records = [from_row(row) for row in rows[: query.limit]]
        more = len(rows) > query.limit and records
        cursor = Cursor(records[-1].created_at, records[-1].id).encode() if more else None
        return TracePage(records, cursor)

    def count(self, query: TraceQuery | None = None) -> int:
        where = _conditions(query, self.dialect) if query is not None else []
        stmt = select(func.count()).select_from(traces)
        if where:
            stmt = stmt.where(and_(*where))
        with self.db.engine.connect() as conn:
            return int(conn.execute(stmt).scalar_one())

    # -- analytics, retention (the rest of TraceBackend) ----------------------------------------

    def totals(
        self,
        *,
        by: Sequence[str] = (),
        since: float,
        until: float | None = None,
        where: Mapping[str, Any] | None = None,
        quantiles: Sequence[float] = (),
    ) -> list[Totals]:
        """See :meth:`lmdeck.tracing.signals.Signals.totals`."""
        return Signals(self.db).totals(by=by, since=since, until=until, where=where, quantiles=quantiles)

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
        """See :meth:`lmdeck.tracing.signals.Signals.series`."""
        return Signals(self.db).series(step=step, by=by, since=since, until=until, where=where, quantiles=quantiles)

    def prune(self, policy: Retention, *, now: float) -> Pruned:
        """See :func:`lmdeck.tracing.retention.prune`."""
        return prune(self.db, policy, now=now)

    def rebuild_rollups(self) -> int:
        """See :func:`lmdeck.tracing.rollups.rebuild`."""
        return rebuild(self.db)


def query_traces(db: Database, query: TraceQuery) -> TracePage:
    """``SQLTraceStore(db).query(query)``: the job the analytics pool runs (in a worker process)."""
    return SQLTraceStore(db).query(query)

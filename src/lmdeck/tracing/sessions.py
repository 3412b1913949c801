"""Sessions: the traces that share a ``session_id``, summed and listed (``/api/sessions``).

    page = list_sessions(db, SessionQuery(team_id="team-a", limit=20))   # most recently active first
    page.sessions[0].requests, page.sessions[0].cost_micros
    one = session_traces(db, SessionTraceQuery("chat-42", team_id="team-a"))
    one.summary, one.records                                              # its traces, oldest first

A session belongs to a team: two teams that send the same session id have two sessions,
and a scoped query (``all_teams=False``) never reads another team's rows. Both queries are
module-level functions so the analytics pool can run them in a worker process.
"""

from __future__ import annotations

import base64
from dataclasses import asdict, dataclass
from typing import Any

import orjson
from sqlalchemy import ColumnElement, and_, case, func, or_, select

from lmdeck.db import Database
from lmdeck.money import dollars
from lmdeck.protocol.traces import TraceRecord
from lmdeck.tracing.query import MAX_LIMIT, TraceFilterError
from lmdeck.tracing.schema import from_row, traces


@dataclass(frozen=True)
class SessionSummary:
    """One session's totals: requests, errors, tokens, cost (micro-dollars) and first/last request time
    (epoch seconds)."""

    id: str
    team_id: str | None
    requests: int
    errors: int
    input_tokens: int
    output_tokens: int
    cost_micros: int
    first_at: float
    last_at: float

    def to_dict(self) -> dict[str, Any]:
        """The API shape: these fields, ``object: "session"`` and ``cost`` in US dollars."""
        return {"object": "session", **asdict(self), "cost": dollars(self.cost_micros)}


@dataclass(frozen=True)
class SessionQuery:
    """Which sessions to list: a team's (``all_teams=False``; ``team_id`` None is the sessions of no team)
    or every team's (optionally one ``team_id``), with a request in ``[since, until)``, ``limit`` per page."""

    team_id: str | None = None
    all_teams: bool = True
    since: float | None = None
    until: float | None = None
    cursor: str | None = None
    limit: int = 50

    def __post_init__(self) -> None:
        if not 1 <= self.limit <= MAX_LIMIT:
            raise TraceFilterError("limit", f"must be between 1 and {MAX_LIMIT}, got {self.limit}")
        if self.cursor is not None:
            _decode(self.cursor, 3)  # refused here, where it is built, not in an analytics worker


@dataclass(frozen=True)
class SessionPage:
    """Sessions, most recently active first; ``next_cursor`` is None on the last page."""

    sessions: list[SessionSummary]
    next_cursor: str | None


@dataclass(frozen=True)
class SessionTraceQuery:
    """One session's traces, oldest first, ``limit`` per page, after ``cursor`` (a ``next_cursor``)."""

    session_id: str
    team_id: str | None = None
    all_teams: bool = True
    cursor: str | None = None
    limit: int = 200

    def __post_init__(self) -> None:
        if not 1 <= self.limit <= MAX_LIMIT:
            raise TraceFilterError("limit", f"must be between 1 and {MAX_LIMIT}, got {self.limit}")
        if self.cursor is not None:
            _decode(self.cursor, 2)


@dataclass(frozen=True)
class SessionTraces:
    """One session: its totals over all its traces, and a page of them, oldest first."""

    summary: SessionSummary
    records: list[TraceRecord]
    next_cursor: str | None


def _encode(values: list[Any]) -> str:
    return base64.urlsafe_b64encode(orjson.dumps(values)).decode()


def _decode(cursor: str, size: int) -> list[Any]:
    try:
        values = orjson.loads(base64.urlsafe_b64decode(cursor.encode()))
    except (ValueError, orjson.JSONDecodeError):
        values = None
    if not isinstance(values, list) or len(values) != size:
        raise TraceFilterError("cursor", "is not a next_cursor this API returned: pass it back unchanged")
    return values


def _team(team_id: str | None, all_teams: bool) -> list[ColumnElement[bool]]:
    if all_teams:
        return [traces.c.team_id == team_id] if team_id is not None else []
    return [traces.c.team_id == team_id if team_id is not None else traces.c.team_id.is_(None)]


def _totals() -> list[Any]:
    c = traces.c
    return [
        func.count().label("requests"),
        func.coalesce(func.sum(case((c.status_code >= 400, 1), else_=0)), 0).label("errors"),
        func.coalesce(func.sum(c.input_tokens), 0).label("input_tokens"),
        func.coalesce(func.sum(c.output_tokens), 0).label("output_tokens"),
        func.coalesce(func.sum(c.cost_micros), 0).label("cost_micros"),
        func.min(c.created_at).label("first_at"),
        func.max(c.created_at).label("last_at"),
    ]


def _summary(row: Any, session_id: str, team_id: str | None) -> SessionSummary:
    return SessionSummary(
        id=session_id,
        team_id=team_id,
        requests=int(row.requests),
        errors=int(row.errors),
        input_tokens=int(row.input_tokens),
        output_tokens=int(row.output_tokens),
        cost_micros=int(row.cost_micros),
        first_at=float(row.first_at),
        last_at=float(row.last_at),
    )


def list_sessions(db: Database, query: SessionQuery) -> SessionPage:
    """The sessions ``query`` selects, most recently active first (a session still active may move up
    between two pages). Raises :class:`TraceFilterError` for a cursor this API did not return."""
    c = traces.c
    where = [c.session_id.is_not(None), *_team(query.team_id, query.all_teams)]
    if query.since is not None:
        where.append(c.created_at >= query.since)
    if query.until is not None:
        where.append(c.created_at < query.until)
    last = func.max(c.created_at)
    team = func.coalesce(c.team_id, "")
    stmt = select(c.session_id, c.team_id, *_totals()).where(and_(*where)).group_by(c.session_id, c.team_id)
    if query.cursor is not None:
        at, session, team_after = _decode(query.cursor, 3)
        stmt = stmt.having(
            or_(
                last < at,
                and_(last == at, c.session_id < session),
                and_(last == at, c.session_id == session, team > team_after),
            )
        )
    stmt = stmt.order_by(last.desc(), c.session_id.desc(), team).limit(query.limit + 1)
    with db.engine.connect() as conn:
        rows = conn.execute(stmt).all()
    sessions = [_summary(row, row.session_id, row.team_id) for row in rows[: query.limit]]
    cursor = None
    if len(rows) > query.limit and sessions:
        tail = sessions[-1]
        cursor = _encode([tail.last_at, tail.id, tail.team_id or ""])
    return SessionPage(sessions, cursor)


def session_traces(db: Database, query: SessionTraceQuery) -> SessionTraces | None:
    """The session's totals and a page of its traces, oldest first; None when the scope holds none of
    its traces (another team's session reads as missing)."""
    c = traces.c
    where = [c.session_id == query.session_id, *_team(query.team_id, query.all_teams)]
    page_where = list(where)
    if query.cursor is not None:
        at, after = _decode(query.cursor, 2)
        page_where.append(or_(c.created_at > at, and_(c.created_at == at, c.id > after)))
    with db.engine.connect() as conn:
        totals = conn.execute(select(*_totals()).where(and_(*where))).one()
        if not totals.requests:
            return None
        teams = conn.execute(select(c.team_id).where(and_(*where)).distinct().limit(2)).scalars().all()
        rows = conn.execute(
            select(traces).where(and_(*page_where)).order_by(c.created_at, c.id).limit(query.limit + 1)
        ).all()
    records = [from_row(row) for row in rows[: query.limit]]
    cursor = None
    if len(rows) > query.limit and records:
        cursor = _encode([records[-1].created_at, records[-1].id])
    # An admin reading a session id that several teams use gets all of them: then no one team is named.
    team_id = teams[0] if len(teams) == 1 else None
    return SessionTraces(_summary(totals, query.session_id, team_id), records, cursor)

"""Spans applications send over OTLP, as stored in ``trace_spans`` (migration ``0011b_trace_spans``).

    rows = [SpanRow(...), ...]                  # what lmdeck.tracing.otlp decodes from an export
    insert_spans(db, rows)                      # twice is the same as once (keyed by team, trace, span)
    spans_of_trace(db, trace_id, team_id="team-a", all_teams=False)

A span is stored under the team of the API key that sent it, and read back only within
that team: one team cannot add spans to (or read spans of) another team's trace, even
with the same trace id.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

from sqlalchemy import JSON, BigInteger, Column, Double, MetaData, String, Table, Text, select
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.dialects.postgresql import insert as postgresql_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert

from lmdeck.db import Database

#: Most spans of one trace a tree reads (per source: spans sent over OTLP, lmdeck's own calls).
MAX_TREE_SPANS = 5000


def _json() -> JSON:
    return JSON(none_as_null=True).with_variant(JSONB(none_as_null=True), "postgresql")  # type: ignore[return-value]


metadata = MetaData()

trace_spans = Table(
    "trace_spans",
    metadata,
    Column("id", String(64), primary_key=True),
    Column("team_id", String(64)),
    Column("key_id", String(64)),
    Column("trace_id", String(32), nullable=False),
    Column("span_id", String(16), nullable=False),
    Column("parent_span_id", String(16)),
    Column("name", String(512), nullable=False),
    Column("kind", String(16), nullable=False),
    Column("start_ns", BigInteger, nullable=False),
    Column("end_ns", BigInteger, nullable=False),
    Column("status", String(8), nullable=False),
    Column("status_message", Text),
    Column("service_name", String(256)),
    Column("scope_name", String(256)),
    Column("attributes", _json()),
    Column("events", _json()),
    Column("links", _json()),
    Column("resource", _json()),
    Column("received_at", Double, nullable=False),
)


def span_key(team_id: str | None, trace_id: str, span_id: str) -> str:
    """The row id of a team's span: a span sent twice (an exporter's retry) is stored once."""
    return hashlib.sha256(f"{team_id or ''}\x00{trace_id}\x00{span_id}".encode()).hexdigest()[:32]


@dataclass
class SpanRow:
    """One span: W3C ids in lowercase hex, times in Unix nanoseconds, ``kind`` (``internal``, ``server``,
    ``client``, ``producer``, ``consumer``, ``unspecified``), ``status`` (``unset``, ``ok``, ``error``),
    attributes as JSON values; ``team_id``/``key_id`` are the sending key's."""

    trace_id: str
    span_id: str
    name: str
    start_ns: int
    end_ns: int
    team_id: str | None = None
    key_id: str | None = None
    parent_span_id: str | None = None
    kind: str = "internal"
    status: str = "unset"
    status_message: str | None = None
    service_name: str | None = None
    scope_name: str | None = None
    attributes: dict[str, Any] = field(default_factory=dict)
    events: list[dict[str, Any]] = field(default_factory=list)
    links: list[dict[str, Any]] = field(default_factory=list)
    resource: dict[str, Any] = field(default_factory=dict)
    received_at: float = 0.0

    def to_row(self) -> dict[str, Any]:
        return {"id": span_key(self.team_id, self.trace_id, self.span_id), **asdict(self)}

    @classmethod
    def from_row(cls, row: Any) -> SpanRow:
        data = dict(row._mapping)
        data.pop("id", None)
        for name, empty in (("attributes", {}), ("events", []), ("links", []), ("resource", {})):
            data[name] = data.get(name) or empty
        return cls(**data)


def insert_spans(db: Database, rows: Sequence[SpanRow]) -> int:
    """Store each span unless the team has it already, in one transaction; the rows inserted."""
    if not rows:
        return 0
    unique = list({r.to_row()["id"]: r.to_row() for r in rows}.values())
    dialect = db.engine.dialect.name
    insert = postgresql_insert if dialect == "postgresql" else sqlite_insert
    stmt = insert(trace_spans).on_conflict_do_nothing().returning(trace_spans.c.id)
    with db.engine.begin() as conn:
        return len(conn.execute(stmt, unique).all())


def spans_of_trace(
    db: Database, trace_id: str, *, team_id: str | None = None, all_teams: bool = True, limit: int = MAX_TREE_SPANS
) -> list[SpanRow]:
    """The stored spans of ``trace_id`` within the scope (``all_teams``, or ``team_id``'s: None is the spans
    of keys without a team), earliest first, at most ``limit``."""
    c = trace_spans.c
    stmt = select(trace_spans).where(c.trace_id == trace_id)
    if not all_teams:
        stmt = stmt.where(c.team_id == team_id if team_id is not None else c.team_id.is_(None))
    with db.engine.connect() as conn:
        rows = conn.execute(stmt.order_by(c.start_ns, c.span_id).limit(limit)).all()
    return [SpanRow.from_row(row) for row in rows]

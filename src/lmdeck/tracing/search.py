"""Text search over traces without a scan: SQLite FTS5 (trigram) and PostgreSQL trigram indexes.

    rows = search_rows(stored_rows)              # what the store writer adds to ``trace_search``
    where = matches("refund", "sqlite")          # a condition on ``traces``, or None (scan instead)

``trace_search`` holds one row per trace: its id and its searchable text, the
error, metadata and request/response bodies as stored (so a trace stored with
its bodies redacted is searchable only by what was kept), lower-cased. The
store writer fills it in the transaction that inserts the trace. On SQLite it
is an FTS5 table with the ``trigram`` tokenizer, on PostgreSQL a table with a
``pg_trgm`` GIN index; both answer a case-insensitive substring of 3
characters or more from the index. A shorter needle has no trigram and is
matched by a scan of the traces the other filters leave.

Search only narrows the trace listing's query: team scope and every other
filter apply to the traces it finds, so a team never finds another team's trace.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

import orjson
from sqlalchemy import ColumnElement, Connection, Select, and_, column, literal_column, select, table, text, true

#: The shortest needle the trigram indexes can answer.
MIN_INDEXED = 3

trace_search = table("trace_search", column("record_id"), column("body"))

#: How the writer adds rows, per dialect: on SQLite an entry's rowid is its trace's, so a lookup per trace is a seek.
INSERT = {
    "sqlite": text("INSERT INTO trace_search (rowid, record_id, body) VALUES (:rowid, :record_id, :body)"),
    "postgresql": text("INSERT INTO trace_search (record_id, body) VALUES (:record_id, :body)"),
}

#: On SQLite, a needle matching at least this many traces is looked up per trace in time order (it is found
#: among the newest at once); a rarer one is looked up in the index first (few matches to order).
COMMON = 2000


def body_of(row: Mapping[str, Any]) -> str:
    """The searchable text of one stored trace row: error, metadata and bodies, lower-cased."""
    parts: list[str] = []
    if row.get("error"):
        parts.append(str(row["error"]))
    for name in ("metadata", "request_body", "response_body"):
        value = row.get(name)
        if value not in (None, {}, []):
            parts.append(orjson.dumps(value, default=str, option=orjson.OPT_NON_STR_KEYS).decode())
    return "\n".join(parts).lower()


def search_rows(rows: Iterable[Mapping[str, Any]], rowids: Mapping[str, Any]) -> list[dict[str, Any]]:
    """``trace_search`` rows for stored trace rows (those with nothing searchable are left out);
    ``rowids`` maps each trace id to its SQLite rowid (None on PostgreSQL)."""
    out = []
    for row in rows:
        body = body_of(row)
        if body:
            out.append({"rowid": rowids.get(row["id"]), "record_id": row["id"], "body": body})
    return out


def _phrase(needle: str) -> str:
    return '"' + needle.lower().replace('"', '""') + '"'


def is_common(conn: Connection, needle: str) -> bool:
    """Whether at least :data:`COMMON` traces contain ``needle`` (SQLite; counted in the index, capped)."""
    if conn.dialect.name != "sqlite" or len(needle) < MIN_INDEXED:
        return False
    probe = text("SELECT COUNT(*) FROM (SELECT 1 FROM trace_search WHERE trace_search MATCH :q LIMIT :cap)").bindparams(
        q=_phrase(needle), cap=COMMON
    )
    return int(conn.execute(probe).scalar_one()) >= COMMON


def _like_pattern(needle: str) -> str:
    escaped = needle.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"%{escaped}%"


def matches(needle: str, dialect: str, id_column: Any, *, common: bool = False) -> ColumnElement[bool] | None:
    """A condition on ``traces``: its text contains ``needle``, answered by the index; None when it cannot be.

    ``common`` (SQLite, from :func:`is_common`): test each trace in the listing's order by a seek on its
    rowid, rather than collect every match first.
    """
    needle = needle.lower()
    if len(needle) < MIN_INDEXED:
        return None
    if dialect == "sqlite":
        if common:
            clause = text(
                "EXISTS (SELECT 1 FROM trace_search WHERE trace_search MATCH :trace_search_q "
                "AND trace_search.rowid = traces.rowid)"
            ).bindparams(trace_search_q=_phrase(needle))
            return and_(true(), clause)
        rowids: Select[Any] = (
            select(literal_column("rowid"))
            .select_from(trace_search)
            .where(text("trace_search MATCH :trace_search_q").bindparams(trace_search_q=_phrase(needle)))
        )
        return literal_column("traces.rowid").in_(rowids)
    if dialect == "postgresql":
        ids = select(trace_search.c.record_id).where(trace_search.c.body.like(_like_pattern(needle), escape="\\"))
        result: ColumnElement[bool] = id_column.in_(ids)
        return result
    return None

"""The trace tables as they stand after every migration, and the row ⇄ record mapping.

    row = to_row(record)              # what the store inserts
    same = from_row(row)              # what a query returns
    tag_rows(record)                  # [{"record_id": ..., "tag": ...}, ...]

Fields of :class:`~lmdeck.protocol.traces.TraceRecord` that have no column yet
travel in the ``extra`` JSON column, so a field added to the record is stored
(and read back) before a migration gives it a column of its own.
"""

from __future__ import annotations

from dataclasses import fields
from typing import Any

import orjson
from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Column,
    Double,
    Integer,
    MetaData,
    PrimaryKeyConstraint,
    String,
    Table,
    Text,
)
from sqlalchemy.dialects.postgresql import JSONB

from lmdeck.protocol.traces import TraceRecord


def _json() -> JSON:
    return JSON(none_as_null=True).with_variant(JSONB(none_as_null=True), "postgresql")  # type: ignore[return-value]


metadata = MetaData()

traces = Table(
    "traces",
    metadata,
    Column("id", String(64), primary_key=True),
    Column("trace_id", String(64), nullable=False),
    Column("request_id", String(128), nullable=False),
    Column("span_id", String(32), nullable=False),
    Column("parent_span_id", String(32)),
    Column("created_at", Double, nullable=False),
    Column("kind", String(32), nullable=False),
    Column("stream", Boolean, nullable=False),
    Column("key_id", String(64)),
    Column("team_id", String(64)),
    Column("user_id", String(256)),
    Column("route", String(256)),
    Column("target", String(512)),
    Column("provider", String(64)),
    Column("upstream_model", String(256)),
    Column("prompt_name", String(256)),
    Column("prompt_version", Integer),
    Column("bundle_hash", String(128)),
    Column("input_tokens", Integer, nullable=False),
    Column("output_tokens", Integer, nullable=False),
    Column("cached_tokens", Integer, nullable=False),
    Column("latency_ms", Double, nullable=False),
    Column("ttft_ms", Double),
    Column("upstream_ms", Double),
    Column("status_code", Integer, nullable=False),
    Column("error", Text),
    Column("error_type", String(64)),
    Column("retries", Integer, nullable=False),
    Column("fallback_used", Boolean, nullable=False),
    Column("cache_hit", Boolean, nullable=False),
    Column("tags", _json()),
    Column("metadata", _json()),
    Column("request_body", _json()),
    Column("response_body", _json()),
    Column("extra", _json()),
    Column("client_request_id", String(128)),
    Column("client_trace_id", String(64)),
    Column("cost_micros", BigInteger, nullable=False),
    Column("cache_write_tokens", Integer, nullable=False),
    Column("saved_tokens", BigInteger, nullable=False),
    Column("saved_micros", BigInteger, nullable=False),
    # Not a record field: retention's legal hold (0012_trace_hold; lmdeck.tracing.expiry).
    Column("legal_hold", Boolean, nullable=False, default=False),
    Column("session_id", String(128)),
)

trace_tags = Table(
    "trace_tags",
    metadata,
    Column("record_id", String(64), nullable=False),
    Column("tag", String(256), nullable=False),
    PrimaryKeyConstraint("record_id", "tag"),
)

#: Record fields stored under another column name.
RENAMED: dict[str, str] = {"user": "user_id"}
_FIELD_OF = {column: field for field, column in RENAMED.items()}
_COLUMNS = frozenset(traces.c.keys()) - {"extra"}


#: (record field, column or None when it travels in ``extra``), computed once.
_LAYOUT: tuple[tuple[str, str | None], ...] = tuple(
    (f.name, RENAMED.get(f.name, f.name) if RENAMED.get(f.name, f.name) in _COLUMNS else None)
    for f in fields(TraceRecord)
)


#: Bounded text columns and their lengths; longer values are cut (PostgreSQL refuses them whole).
_LIMITS: dict[str, int] = {
    c.name: c.type.length for c in traces.c if isinstance(c.type, String) and c.type.length and c.name != "id"
}


def _without_nul(value: Any) -> Any:
    """``value`` with NUL characters replaced: PostgreSQL stores none in text or JSON."""
    if isinstance(value, str):
        return value.replace("\x00", "\ufffd")
    if isinstance(value, dict):
        return {_without_nul(k): _without_nul(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_without_nul(v) for v in value]
    return value


def to_row(record: TraceRecord) -> dict[str, Any]:
    values = vars(record)
    row: dict[str, Any] = {}
    extra: dict[str, Any] = {}
    for name, column in _LAYOUT:
        if column is not None:
            row[column] = values[name]
        else:
            extra[name] = values[name]
    row["extra"] = extra or None
    for column, limit in _LIMITS.items():
        value = row[column]
        if isinstance(value, str) and len(value) > limit:
            row[column] = value[:limit]
    if b"\\u0000" in orjson.dumps(row, default=str, option=orjson.OPT_NON_STR_KEYS):
        row = _without_nul(row)
    return row


def from_row(row: Any) -> TraceRecord:
    mapping: dict[str, Any] = dict(row._mapping) if hasattr(row, "_mapping") else dict(row)
    extra = mapping.pop("extra", None) or {}
    data = {_FIELD_OF.get(column, column): value for column, value in mapping.items()}
    data.update(extra)
    record = TraceRecord.from_dict(data)
    record.tags = list(record.tags or [])
    record.metadata = dict(record.metadata or {})
    return record


def tag_rows(record: TraceRecord) -> list[dict[str, str]]:
    limit = getattr(trace_tags.c.tag.type, "length", None) or 256
    tags = dict.fromkeys(_without_nul(str(tag))[:limit] for tag in record.tags or [])
    return [{"record_id": record.id, "tag": tag} for tag in tags]

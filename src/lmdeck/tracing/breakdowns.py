"""Spend breakdowns by user and by tag: small hourly and daily rollups the store writer keeps.

One row of ``trace_breakdowns`` holds, for one hour or UTC day (``grain``, in
seconds), one team and one value of one dimension (``user``: the trace's
``user_id``; ``tag``: one of its tags), the request count, errors,
input/output tokens and cost in micro-dollars::

    deltas = Breakdowns.of_rows(stored_rows, tag_rows)   # what some newly stored traces add
    apply(conn, deltas)                                  # in the transaction that inserted them
    fill(conn)                                           # every stored trace again (rebuild)

They answer ``/api/spend?by=user`` and ``?by=tag`` through
:meth:`lmdeck.tracing.signals.Signals.breakdown`, which reads whole hours and
days here and the slivers under an hour at the ends of a window from the raw
traces. A trace with several tags is in one ``tag`` row per tag; one without a
user is in the ``user`` row whose value is NULL. As with
:mod:`lmdeck.tracing.rollups`, the writer adds only the traces its insert
stored, so the totals equal the raw traces' exactly after a replay.

The rows hold only sums, so adding a batch is one ``INSERT ... ON CONFLICT DO
UPDATE`` per distinct row, sent to the driver in one ``executemany``.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, Literal

import orjson
from sqlalchemy import (
    BigInteger,
    Column,
    Connection,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    delete,
    select,
)

from lmdeck.tracing.schema import trace_tags, traces

HOUR, DAY = 3600, 86400
#: Bucket widths in seconds, finest first: breakdowns have no minute grain.
GRAINS: tuple[int, ...] = (HOUR, DAY)

Dimension = Literal["user", "tag"]
#: The dimensions a breakdown is kept by.
DIMENSIONS: tuple[Dimension, ...] = ("user", "tag")

#: Additive counters of a breakdown row.
COUNTERS: tuple[str, ...] = ("requests", "errors", "input_tokens", "output_tokens", "cost_micros")

breakdown_metadata = MetaData()

trace_breakdowns = Table(
    "trace_breakdowns",
    breakdown_metadata,
    Column("id", String(32), primary_key=True),
    Column("grain", Integer, nullable=False),
    Column("bucket", BigInteger, nullable=False),
    Column("dimension", String(8), nullable=False),
    Column("value", String(256)),
    Column("team_id", String(64)),
    *(Column(name, BigInteger, nullable=False, default=0) for name in COUNTERS),
)
Index(
    "ix_trace_breakdowns_dimension_grain_bucket",
    trace_breakdowns.c.dimension,
    trace_breakdowns.c.grain,
    trace_breakdowns.c.bucket,
)

_COLUMNS = ("id", "grain", "bucket", "dimension", "value", "team_id", *COUNTERS)
_ADDED = ", ".join(f"{name} = trace_breakdowns.{name} + excluded.{name}" for name in COUNTERS)
#: The upsert per dialect, in the driver's own parameter style (sent with ``exec_driver_sql``).
UPSERT: dict[str, str] = {
    dialect: f"INSERT INTO trace_breakdowns ({', '.join(_COLUMNS)}) VALUES ({', '.join([mark] * len(_COLUMNS))}) "
    f"ON CONFLICT (id) DO UPDATE SET {_ADDED}"
    for dialect, mark in (("sqlite", "?"), ("postgresql", "%s"))
}


def breakdown_id(grain: int, bucket: int, dimension: str, value: str | None, team: str | None) -> str:
    """The primary key of one breakdown row: a hash of its grain, bucket, dimension, value and team."""
    raw = orjson.dumps([grain, bucket, dimension, value, team])
    return hashlib.blake2b(raw, digest_size=16).hexdigest()


def counters_of(row: Mapping[Any, Any]) -> tuple[int, ...]:
    """What one stored trace row adds to each of :data:`COUNTERS`."""
    return (
        1,
        int(int(row["status_code"]) >= 400),
        int(row.get("input_tokens") or 0),
        int(row.get("output_tokens") or 0),
        int(row.get("cost_micros") or 0),
    )


class Breakdowns:
    """Counter deltas keyed by breakdown row, gathered before one :func:`apply`."""

    def __init__(self) -> None:
        #: (grain, bucket, dimension, value, team) -> counters.
        self.deltas: dict[tuple[int, int, str, str | None, str | None], list[int]] = {}

    def add(self, row: Mapping[Any, Any], tags: Iterable[str] = ()) -> None:
        """Add one stored trace row (``user_id``, ``team_id``, ``created_at``, counters) and its tags."""
        counters = counters_of(row)
        team = row.get("team_id")
        created = float(row["created_at"])
        values: list[tuple[str, str | None]] = [("user", row.get("user_id"))]
        values.extend(("tag", tag) for tag in tags)
        for grain in GRAINS:
            bucket = int(created // grain) * grain
            for dimension, value in values:
                key = (grain, bucket, dimension, value, team)
                cell = self.deltas.get(key)
                if cell is None:
                    self.deltas[key] = list(counters)
                else:
                    for i, value_added in enumerate(counters):
                        cell[i] += value_added

    @classmethod
    def of_rows(cls, rows: Iterable[Mapping[Any, Any]], tags: Iterable[Mapping[Any, Any]] = ()) -> Breakdowns:
        """The deltas of stored trace rows, with their tags (``trace_tags`` rows: ``record_id``, ``tag``)."""
        by_record: dict[str, list[str]] = {}
        for tag in tags:
            by_record.setdefault(tag["record_id"], []).append(tag["tag"])
        breakdowns = cls()
        for row in rows:
            breakdowns.add(row, by_record.get(row["id"], ()))
        return breakdowns

    def __len__(self) -> int:
        return len(self.deltas)


def apply(conn: Connection, breakdowns: Breakdowns) -> None:
    """Add ``breakdowns`` to ``trace_breakdowns`` inside ``conn``'s transaction (one upsert per row,
    in key order so that two writers on PostgreSQL lock rows in the same order)."""
    if not breakdowns.deltas:
        return
    params = []
    for key in sorted(breakdowns.deltas, key=repr):
        grain, bucket, dimension, value, team = key
        id = breakdown_id(grain, bucket, dimension, value, team)
        params.append((id, grain, bucket, dimension, value, team, *breakdowns.deltas[key]))
    conn.exec_driver_sql(UPSERT[conn.dialect.name], params)


#: Trace columns a breakdown reads.
SOURCE = (
    traces.c.id,
    traces.c.created_at,
    traces.c.user_id,
    traces.c.team_id,
    traces.c.status_code,
    traces.c.input_tokens,
    traces.c.output_tokens,
    traces.c.cost_micros,
)


def fill(conn: Connection, *, chunk: int = 20_000, since: float | None = None) -> int:
    """Add every stored trace (created at ``since`` or later) to the breakdowns, in ``conn``'s transaction;
    the number of traces read."""
    read = 0
    last = ""
    while True:
        stmt = select(*SOURCE).where(traces.c.id > last)
        if since is not None:
            stmt = stmt.where(traces.c.created_at >= since)
        rows = conn.execute(stmt.order_by(traces.c.id).limit(chunk)).all()
        if not rows:
            return read
        ids = [row.id for row in rows]
        tags = conn.execute(select(trace_tags.c.record_id, trace_tags.c.tag).where(trace_tags.c.record_id.in_(ids)))
        apply(conn, Breakdowns.of_rows((row._mapping for row in rows), (tag._mapping for tag in tags)))
        read += len(rows)
        last = rows[-1].id


def clear(conn: Connection, since: float) -> None:
    """Delete the breakdowns of buckets starting at ``since`` or later (before a :func:`fill` from ``since``)."""
    conn.execute(delete(trace_breakdowns).where(trace_breakdowns.c.bucket >= since))


def prune(conn: Connection, before: float, *, limit: int | None = None) -> int:
    """Delete breakdowns whose bucket starts before ``before`` (epoch seconds), at most ``limit`` of them;
    rows deleted."""
    old = trace_breakdowns.c.bucket < before
    if limit is not None:
        old = trace_breakdowns.c.id.in_(select(trace_breakdowns.c.id).where(old).limit(limit))
    result = conn.execute(delete(trace_breakdowns).where(old))
    return int(result.rowcount or 0)


def raw_source(dimension: Dimension) -> Sequence[Any]:
    """The columns a raw sliver of a ``dimension`` breakdown reads: the value, then what :func:`counters_of` reads."""
    value = traces.c.user_id if dimension == "user" else trace_tags.c.tag
    return (
        value.label("value"),
        traces.c.status_code,
        traces.c.input_tokens,
        traces.c.output_tokens,
        traces.c.cost_micros,
    )

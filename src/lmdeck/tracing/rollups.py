"""Trace rollups: per-bucket aggregates that the store writer keeps as traces land.

One row of ``trace_rollups`` holds, for one time bucket (a minute, an hour or a
UTC day: :data:`GRAINS`, in seconds) and one combination of the dimensions
(:data:`DIMENSIONS`: route, target, upstream model, prompt name and version,
experiment variant, team, key, status class), the request count, errors,
input/output/cached/cache-write tokens, cost in micro-dollars, cache hits,
guardrail actions, the latency sum, and latency and time-to-first-token
distributions as mergeable :class:`~lmdeck.tracing.sketch.Sketch` es::

    deltas = Rollups.of_rows([to_row(record) for record in new_records])
    apply(conn, deltas)                   # in the transaction that inserted those traces
    rebuild(db)                           # every rollup again from the raw traces

The writer adds a trace to the rollups in the same transaction as its insert,
and only when the insert stored it (a trace read again from the spool after a
crash is already in the table and adds nothing): rollup totals equal raw
totals exactly. Each trace is counted once at every grain of each level: the
route level (route, target, model, status class) per minute, hour and day, the
full level (every dimension) per hour and day. So any window made of whole
days, hours and (at the route level) minutes is answered from at most a few
thousand rows (see :mod:`lmdeck.tracing.signals`).

A batch's traces that share a row are folded into one delta first, and the
deltas are written with one upsert per row (counters added, sketches merged in
the database), sent to the driver in one ``executemany``.
"""

from __future__ import annotations

import hashlib
import sqlite3
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import orjson
from sqlalchemy import (
    BigInteger,
    Column,
    Connection,
    Double,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    and_,
    delete,
    func,
    select,
)

from lmdeck.db import Database
from lmdeck.tracing import breakdowns
from lmdeck.tracing.expiry import deleted_before
from lmdeck.tracing.schema import traces
from lmdeck.tracing.sketch import SKETCH_MERGE, Key, Sketch, register_sketch_merge

MINUTE, HOUR, DAY = 60, 3600, 86400
#: Bucket widths in seconds, finest first.
GRAINS: tuple[int, ...] = (MINUTE, HOUR, DAY)

#: The rollup dimensions, in key order; each is a column of ``trace_rollups``.
DIMENSIONS: tuple[str, ...] = (
    "route",
    "target",
    "model",
    "prompt_name",
    "prompt_version",
    "variant",
    "team_id",
    "key_id",
    "status_class",
)

#: Rollup levels: every dimension, or only the route's (route, target, model, status class). A query
#: that groups and filters by those alone reads the route level, a few rows per bucket, instead of
#: every team x key x prompt x variant combination.
FULL, ROUTE = 0, 1
ROUTE_DIMENSIONS: frozenset[str] = frozenset({"route", "target", "model", "status_class"})
#: The grains each level is kept at. The full level has no minutes: with every dimension nearly each
#: trace would open a minute row of its own (the writer's dearest work); a query that needs every
#: dimension reads the raw traces for the part of its window under a whole hour.
LEVEL_GRAINS: dict[int, tuple[int, ...]] = {FULL: (HOUR, DAY), ROUTE: GRAINS}

#: Additive counters, in the order :class:`Delta` keeps them.
COUNTERS: tuple[str, ...] = (
    "requests",
    "errors",
    "input_tokens",
    "output_tokens",
    "cached_tokens",
    "cache_write_tokens",
    "cost_micros",
    "cache_hits",
    "guardrail_actions",
    "saved_tokens",
    "saved_micros",
)

rollup_metadata = MetaData()

trace_rollups = Table(
    "trace_rollups",
    rollup_metadata,
    Column("id", String(32), primary_key=True),
    Column("level", Integer, nullable=False, default=0),
    Column("grain", Integer, nullable=False),
    Column("bucket", BigInteger, nullable=False),
    Column("route", String(256)),
    Column("target", String(512)),
    Column("model", String(256)),
    Column("prompt_name", String(256)),
    Column("prompt_version", Integer),
    Column("variant", String(256)),
    Column("team_id", String(64)),
    Column("key_id", String(64)),
    Column("status_class", String(3), nullable=False),
    *(Column(name, BigInteger, nullable=False, default=0) for name in COUNTERS),
    Column("latency_ms_sum", Double, nullable=False, default=0.0),
    Column("latency_sketch", Text),
    Column("ttft_sketch", Text),
)
Index("ix_trace_rollups_grain_bucket", trace_rollups.c.grain, trace_rollups.c.bucket)
Index("ix_trace_rollups_level_grain_bucket", trace_rollups.c.level, trace_rollups.c.grain, trace_rollups.c.bucket)

_VARIANT_LENGTH = 256


def status_class(code: int) -> str:
    """``"2xx"``, ``"4xx"``, ``"5xx"``... for an HTTP status code."""
    return f"{code // 100}xx"


def _guardrail_actions(metadata: Any) -> int:
    """Guardrail actions a trace records in ``metadata["guardrail_actions"]`` (a list, or a count)."""
    if not isinstance(metadata, Mapping):
        return 0
    actions = metadata.get("guardrail_actions")
    if isinstance(actions, list):
        return len(actions)
    return actions if isinstance(actions, int) and not isinstance(actions, bool) and actions > 0 else 0


def dimensions_of(row: Mapping[Any, Any]) -> tuple[Any, ...]:
    """The rollup dimensions of one stored trace row (``to_row``'s dict or a ``traces`` row)."""
    metadata = row.get("metadata")
    variant = metadata.get("variant") if isinstance(metadata, Mapping) else None
    return (
        row.get("route"),
        row.get("target"),
        row.get("upstream_model"),
        row.get("prompt_name"),
        row.get("prompt_version"),
        str(variant)[:_VARIANT_LENGTH] if variant is not None else None,
        row.get("team_id"),
        row.get("key_id"),
        status_class(int(row["status_code"])),
    )


def counters_of(row: Mapping[Any, Any]) -> tuple[int, ...]:
    """What one stored trace row adds to each of :data:`COUNTERS`."""
    return (
        1,
        int(int(row["status_code"]) >= 400),
        int(row.get("input_tokens") or 0),
        int(row.get("output_tokens") or 0),
        int(row.get("cached_tokens") or 0),
        int(row.get("cache_write_tokens") or 0),
        int(row.get("cost_micros") or 0),
        int(bool(row.get("cache_hit"))),
        _guardrail_actions(row.get("metadata")),
        int(row.get("saved_tokens") or 0),
        int(row.get("saved_micros") or 0),
    )


def rollup_id(grain: int, bucket: int, dims: Sequence[Any], level: int = 0) -> str:
    """The primary key of one rollup row: a hash of its level, grain, bucket and dimensions."""
    raw = orjson.dumps([grain, bucket, *dims] if level == FULL else [level, grain, bucket, *dims])
    return hashlib.blake2b(raw, digest_size=16).hexdigest()


@dataclass(slots=True)
class Delta:
    """What some traces add to one rollup row."""

    grain: int
    bucket: int
    dims: tuple[Any, ...]
    level: int = 0
    counters: list[int] = field(default_factory=lambda: [0] * len(COUNTERS))
    latency_ms_sum: float = 0.0
    latency: Sketch = field(default_factory=Sketch)
    ttft: Sketch | None = None

    def add(self, row: Mapping[Any, Any]) -> None:
        """Add one stored trace row."""
        ttft = row.get("ttft_ms")
        self.add_counted(
            counters_of(row),
            float(row.get("latency_ms") or 0.0),
            Sketch.key_of(float(row.get("latency_ms") or 0.0)),
            Sketch.key_of(float(ttft)) if ttft is not None else None,
        )

    def add_counted(
        self, counters: Sequence[int], latency_ms: float, latency_key: Key | None, ttft_key: Key | None
    ) -> None:
        """Add one trace whose counters and sketch buckets (:meth:`Sketch.key_of`; None: not counted) are
        worked out already."""
        mine = self.counters
        for i, value in enumerate(counters):
            mine[i] += value
        self.latency_ms_sum += latency_ms
        if latency_key is not None:
            self.latency.add_key(latency_key)
        if ttft_key is not None:
            if self.ttft is None:
                self.ttft = Sketch()
            self.ttft.add_key(ttft_key)

    def row(self, id: str) -> dict[str, Any]:
        values: dict[str, Any] = {"id": id, "level": self.level, "grain": self.grain, "bucket": self.bucket}
        values.update(zip(DIMENSIONS, self.dims, strict=True))
        values.update(zip(COUNTERS, self.counters, strict=True))
        values["latency_ms_sum"] = self.latency_ms_sum
        values["latency_sketch"] = self.latency.dumps()
        values["ttft_sketch"] = self.ttft.dumps() if self.ttft is not None else None
        return values

    def params(self, id: str) -> tuple[Any, ...]:
        """The values of :data:`UPSERT_COLUMNS`, in order."""
        return (
            id,
            self.level,
            self.grain,
            self.bucket,
            *self.dims,
            *self.counters,
            self.latency_ms_sum,
            self.latency.dumps(),
            self.ttft.dumps() if self.ttft is not None else None,
        )


class Rollups:
    """Deltas keyed by rollup id, gathered from trace rows before one :func:`apply`.

    Each trace's counters and sketch buckets are worked out once and added to its row at every
    grain and level; a batch's traces that share a row are folded into one delta, so :func:`apply`
    writes each distinct row once per batch.
    """

    def __init__(self, levels: Sequence[int] = (FULL, ROUTE)) -> None:
        self.deltas: dict[str, Delta] = {}
        self.levels = tuple(levels)
        self._ids: dict[tuple[Any, ...], str] = {}

    def add(self, row: Mapping[Any, Any]) -> None:
        full = dimensions_of(row)
        narrow = tuple(
            value if name in ROUTE_DIMENSIONS else None for name, value in zip(DIMENSIONS, full, strict=True)
        )
        counters = counters_of(row)
        latency = float(row.get("latency_ms") or 0.0)
        latency_key = Sketch.key_of(latency)
        ttft = row.get("ttft_ms")
        ttft_key = Sketch.key_of(float(ttft)) if ttft is not None else None
        created = float(row["created_at"])
        for level, dims in ((FULL, full), (ROUTE, narrow)):
            if level not in self.levels:
                continue
            for grain in LEVEL_GRAINS[level]:
                bucket = int(created // grain) * grain
                cell = (level, grain, bucket, dims)
                id = self._ids.get(cell)
                if id is None:
                    id = self._ids[cell] = rollup_id(grain, bucket, dims, level)
                delta = self.deltas.get(id)
                if delta is None:
                    delta = self.deltas[id] = Delta(grain, bucket, dims, level)
                delta.add_counted(counters, latency, latency_key, ttft_key)

    @classmethod
    def of_rows(cls, rows: Iterable[Mapping[Any, Any]], levels: Sequence[int] = (FULL, ROUTE)) -> Rollups:
        rollups = cls(levels)
        for row in rows:
            rollups.add(row)
        return rollups

    def __len__(self) -> int:
        return len(self.deltas)


#: The columns :func:`apply` writes, in :meth:`Delta.params` order.
UPSERT_COLUMNS: tuple[str, ...] = (
    "id",
    "level",
    "grain",
    "bucket",
    *DIMENSIONS,
    *COUNTERS,
    "latency_ms_sum",
    "latency_sketch",
    "ttft_sketch",
)
_ADDED = ", ".join(f"{name} = trace_rollups.{name} + excluded.{name}" for name in (*COUNTERS, "latency_ms_sum"))
_SKETCHES = ", ".join(
    f"{name} = {SKETCH_MERGE}(trace_rollups.{name}, excluded.{name})" for name in ("latency_sketch", "ttft_sketch")
)
#: The upsert per dialect, in the driver's own parameter style (sent with ``exec_driver_sql``): a new row is
#: inserted, an existing one gets the counters added and the sketches merged by :data:`SKETCH_MERGE`.
UPSERT: dict[str, str] = {
    dialect: f"INSERT INTO trace_rollups ({', '.join(UPSERT_COLUMNS)}) "
    f"VALUES ({', '.join([mark] * len(UPSERT_COLUMNS))}) ON CONFLICT (id) DO UPDATE SET {_ADDED}, {_SKETCHES}"
    for dialect, mark in (("sqlite", "?"), ("postgresql", "%s"))
}


#: :data:`SKETCH_MERGE` in SQL for PostgreSQL: bucket counts added key by key, zero buckets added.
_SKETCH_MERGE_POSTGRESQL = f"""
CREATE OR REPLACE FUNCTION {SKETCH_MERGE}(stored text, added text) RETURNS text
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
  SELECT CASE
    WHEN added IS NULL OR added = '' THEN stored
    WHEN stored IS NULL OR stored = '' THEN added
    ELSE json_build_object(
      'z', COALESCE((stored::jsonb ->> 'z')::bigint, 0) + COALESCE((added::jsonb ->> 'z')::bigint, 0),
      'b', COALESCE((
        SELECT jsonb_object_agg(k, n) FROM (
          SELECT k, SUM(v::bigint) AS n FROM (
            SELECT * FROM jsonb_each_text(COALESCE(stored::jsonb -> 'b', '{{}}'::jsonb))
            UNION ALL
            SELECT * FROM jsonb_each_text(COALESCE(added::jsonb -> 'b', '{{}}'::jsonb))
          ) AS buckets(k, v) GROUP BY k
        ) AS merged
      ), '{{}}'::jsonb)
    )::text
  END
$$
"""


def define_sketch_merge(conn: Connection) -> None:
    """Make :data:`SKETCH_MERGE` callable on ``conn``: created in the database on PostgreSQL (a migration does
    it once), registered on the connection on SQLite."""
    if conn.dialect.name == "postgresql":
        conn.exec_driver_sql(_SKETCH_MERGE_POSTGRESQL)
    elif not conn.connection.info.get(SKETCH_MERGE):
        # Once per connection (its info lasts as long as it does): SQLite refuses to redefine a function
        # while a statement of the connection is open.
        driver = conn.connection.driver_connection
        assert isinstance(driver, sqlite3.Connection), "rollups are kept on SQLite or PostgreSQL"
        register_sketch_merge(driver)
        conn.connection.info[SKETCH_MERGE] = True


def apply(conn: Connection, rollups: Rollups) -> None:
    """Add ``rollups`` to ``trace_rollups`` inside ``conn``'s transaction: one upsert per distinct row, sent to
    the driver in one ``executemany``.

    A row that exists gets its counters added to and its sketches merged in the database
    (:data:`SKETCH_MERGE`: a SQL function on PostgreSQL, from migration ``0009_trace_sketch_merge``; a Python
    function registered on the connection on SQLite). Rows are written in id order, so two writers on
    PostgreSQL lock them in the same order.
    """
    if not rollups.deltas:
        return
    if conn.dialect.name == "sqlite":
        define_sketch_merge(conn)
    params = [rollups.deltas[id].params(id) for id in sorted(rollups.deltas)]
    conn.exec_driver_sql(UPSERT[conn.dialect.name], params)


#: Trace columns a rollup reads.
_SOURCE = (
    traces.c.id,
    traces.c.created_at,
    traces.c.route,
    traces.c.target,
    traces.c.upstream_model,
    traces.c.prompt_name,
    traces.c.prompt_version,
    traces.c["metadata"],
    traces.c.team_id,
    traces.c.key_id,
    traces.c.status_code,
    traces.c.input_tokens,
    traces.c.output_tokens,
    traces.c.cached_tokens,
    traces.c.cache_write_tokens,
    traces.c.cost_micros,
    traces.c.cache_hit,
    traces.c.saved_tokens,
    traces.c.saved_micros,
    traces.c.latency_ms,
    traces.c.ttft_ms,
)


def rebuild(db: Database, *, chunk: int = 20_000) -> int:
    """Recompute the rollups and the breakdowns (:mod:`lmdeck.tracing.breakdowns`) of the days the raw
    traces cover; the number of traces read.

    Rollups from before the oldest stored trace's UTC day, or from before the newest
    cut-off retention deleted traces before (some traces of those days gone, others
    kept by a longer policy or a legal hold), are kept as they are. One transaction: the rollups are locked
    against the store writer while it runs (its inserts wait, then add their
    traces after), so the result is exact even while traces keep arriving.
    """
    with db.engine.begin() as conn:
        if conn.dialect.name == "postgresql":
            conn.exec_driver_sql("LOCK TABLE trace_rollups, trace_breakdowns IN EXCLUSIVE MODE")
        oldest = conn.execute(select(func.min(traces.c.created_at))).scalar()
        if oldest is None:
            return 0  # no raw traces: nothing to recompute, and the rollups are all there is
        since = int(oldest // DAY) * DAY
        pruned_before = deleted_before(conn)
        if pruned_before is not None:
            since = max(since, int(pruned_before // DAY) * DAY)
        conn.execute(delete(trace_rollups).where(trace_rollups.c.bucket >= since))
        breakdowns.clear(conn, since)
        read = fill(conn, chunk=chunk, since=since)
        breakdowns.fill(conn, chunk=chunk, since=since)
        return read


def fill(
    conn: Connection, *, chunk: int = 20_000, levels: Sequence[int] = (FULL, ROUTE), since: float | None = None
) -> int:
    """Add every stored trace (created at ``since`` or later) to the rollups of ``levels`` (in ``conn``'s
    transaction); the number of traces read."""
    read = 0
    last = ""
    while True:
        stmt = select(*_SOURCE).where(traces.c.id > last)
        if since is not None:
            stmt = stmt.where(traces.c.created_at >= since)
        rows = conn.execute(stmt.order_by(traces.c.id).limit(chunk)).all()
        if not rows:
            return read
        apply(conn, Rollups.of_rows((row._mapping for row in rows), levels))
        read += len(rows)
        last = rows[-1].id


def prune(conn: Connection, grain: int, before: float, *, limit: int | None = None) -> int:
    """Delete rollups of ``grain`` whose bucket starts before ``before`` (epoch seconds), at most ``limit`` of
    them; rows deleted."""
    old = and_(trace_rollups.c.grain == grain, trace_rollups.c.bucket < before)
    if limit is not None:
        old = trace_rollups.c.id.in_(select(trace_rollups.c.id).where(old).limit(limit))
    result = conn.execute(delete(trace_rollups).where(old))
    return int(result.rowcount or 0)

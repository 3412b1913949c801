"""The trace tables, as named migrations.

``traces`` holds one row per request, keyed by the record's unique ``id`` so that
a replayed spool inserts nothing twice. ``trace_tags`` holds one row per tag of a
trace, so that a tag filter (or a cost breakdown by tag) is an indexed join on
SQLite and PostgreSQL alike.

A migration is history: it spells out the tables as they were when it was
written and never imports the live definitions in :mod:`lmdeck.tracing.schema`.
"""

from __future__ import annotations

import logging

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Column,
    Connection,
    Double,
    Index,
    Integer,
    MetaData,
    PrimaryKeyConstraint,
    String,
    Table,
    Text,
    text,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.exc import DBAPIError

from lmdeck.db.migrations import migrations

log = logging.getLogger(__name__)


def _json() -> JSON:
    return JSON(none_as_null=True).with_variant(JSONB(none_as_null=True), "postgresql")  # type: ignore[return-value]


@migrations("0001_traces")
def create_traces(conn: Connection) -> None:
    meta = MetaData()
    traces = Table(
        "traces",
        meta,
        Column("id", String(64), primary_key=True),
        Column("trace_id", String(64), nullable=False),
        Column("request_id", String(128), nullable=False, default=""),
        Column("span_id", String(32), nullable=False, default=""),
        Column("parent_span_id", String(32)),
        Column("created_at", Double, nullable=False),
        Column("kind", String(32), nullable=False),
        Column("stream", Boolean, nullable=False, default=False),
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
        Column("input_tokens", Integer, nullable=False, default=0),
        Column("output_tokens", Integer, nullable=False, default=0),
        Column("cached_tokens", Integer, nullable=False, default=0),
        Column("cost", Double, nullable=False, default=0.0),
        Column("latency_ms", Double, nullable=False, default=0.0),
        Column("ttft_ms", Double),
        Column("upstream_ms", Double),
        Column("status_code", Integer, nullable=False),
        Column("error", Text),
        Column("error_type", String(64)),
        Column("retries", Integer, nullable=False, default=0),
        Column("fallback_used", Boolean, nullable=False, default=False),
        Column("cache_hit", Boolean, nullable=False, default=False),
        Column("tags", _json()),
        Column("metadata", _json()),
        Column("request_body", _json()),
        Column("response_body", _json()),
        Column("extra", _json()),
    )
    Index("ix_traces_created_at", traces.c.created_at)
    Index("ix_traces_route", traces.c.route)
    Index("ix_traces_key_id", traces.c.key_id)
    Index("ix_traces_team_id", traces.c.team_id)
    Index("ix_traces_status_code", traces.c.status_code)
    Index("ix_traces_request_id", traces.c.request_id)
    Index("ix_traces_trace_id", traces.c.trace_id)
    tags = Table(
        "trace_tags",
        meta,
        Column("record_id", String(64), nullable=False),
        Column("tag", String(256), nullable=False),
        PrimaryKeyConstraint("record_id", "tag"),
    )
    Index("ix_trace_tags_tag", tags.c.tag)
    meta.create_all(conn)


@migrations("0002_trace_client_ids")
def add_client_ids(conn: Connection) -> None:
    """The caller's ``x-request-id`` and ``traceparent`` trace id, kept beside lmdeck's own ids.

    Earlier rows held the caller's ``x-request-id`` in ``request_id`` when one was sent;
    they keep it there (lmdeck cannot tell which ones were the caller's).
    """
    conn.execute(text("ALTER TABLE traces ADD COLUMN client_request_id VARCHAR(128)"))
    conn.execute(text("ALTER TABLE traces ADD COLUMN client_trace_id VARCHAR(64)"))
    conn.execute(text("CREATE INDEX ix_traces_client_request_id ON traces (client_request_id)"))


@migrations("0003_trace_cost_micros")
def cost_in_micros(conn: Connection) -> None:
    """Cost in whole micro-dollars (``cost_micros``, exact to sum) instead of floating-point dollars,
    and the prompt tokens written to a cache (``cache_write_tokens``) beside those read from one."""
    conn.execute(text("ALTER TABLE traces ADD COLUMN cost_micros BIGINT NOT NULL DEFAULT 0"))
    conn.execute(text("UPDATE traces SET cost_micros = CAST(ROUND(cost * 1000000) AS BIGINT)"))
    conn.execute(text("ALTER TABLE traces DROP COLUMN cost"))
    conn.execute(text("ALTER TABLE traces ADD COLUMN cache_write_tokens INTEGER NOT NULL DEFAULT 0"))


@migrations("0004_trace_rollups")
def create_rollups(conn: Connection) -> None:
    """``trace_rollups``: per minute, hour and day aggregates the store writer keeps (see tracing/rollups.py).

    Filled from the traces already stored, so a database upgraded with traces in it starts consistent.
    """
    meta = MetaData()
    counters = (
        "requests",
        "errors",
        "input_tokens",
        "output_tokens",
        "cached_tokens",
        "cache_write_tokens",
        "cost_micros",
        "cache_hits",
        "guardrail_actions",
    )
    rollups = Table(
        "trace_rollups",
        meta,
        Column("id", String(32), primary_key=True),
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
        *(Column(name, BigInteger, nullable=False, default=0) for name in counters),
        Column("latency_ms_sum", Double, nullable=False, default=0.0),
        Column("latency_sketch", Text),
        Column("ttft_sketch", Text),
    )
    Index("ix_trace_rollups_grain_bucket", rollups.c.grain, rollups.c.bucket)
    meta.create_all(conn)
    # The traces already stored are rolled up by 0007_trace_rollup_levels, once the table is complete.


@migrations("0005_trace_listing_indexes")
def listing_indexes(conn: Connection) -> None:
    """Indexes for the filtered, newest-first listings: each filter with the time it is ordered by.

    They replace the single-column indexes on route, key, team and status, which each new one starts with.
    """
    for name in ("route", "key_id", "team_id", "status_code"):
        conn.execute(text(f"DROP INDEX IF EXISTS ix_traces_{name}"))
    for name, columns in (
        ("route_time", "route, created_at"),
        ("key_time", "key_id, created_at"),
        ("team_time", "team_id, created_at"),
        ("status_time", "status_code, created_at"),
        ("prompt_time", "prompt_name, prompt_version, created_at"),
    ):
        conn.execute(text(f"CREATE INDEX ix_traces_{name} ON traces ({columns})"))
    conn.execute(text("CREATE INDEX ix_traces_errors_time ON traces (created_at) WHERE status_code >= 400"))


@migrations("0006_trace_search")
def create_search(conn: Connection) -> None:
    """``trace_search``: each trace's error, metadata and bodies, lower-cased, under a trigram index
    (SQLite FTS5 ``trigram``; PostgreSQL ``pg_trgm`` GIN), filled from the traces already stored."""
    if conn.dialect.name == "sqlite":
        conn.execute(
            text("CREATE VIRTUAL TABLE trace_search USING fts5(body, record_id UNINDEXED, tokenize='trigram')")
        )
        parts = ("error", "metadata", "request_body", "response_body")
        body = "lower(" + " || char(10) || ".join(f"coalesce({p}, '')" for p in parts) + ")"
    else:
        conn.execute(text("CREATE TABLE trace_search (record_id VARCHAR(64) PRIMARY KEY, body TEXT NOT NULL)"))
        try:
            with conn.begin_nested():
                conn.execute(text("CREATE EXTENSION IF NOT EXISTS pg_trgm"))
                conn.execute(text("CREATE INDEX ix_trace_search_body ON trace_search USING gin (body gin_trgm_ops)"))
        except DBAPIError as exc:
            # Search still works, by a scan of trace_search; the index needs the extension.
            log.warning(
                "no trigram index for trace search (%s): run CREATE EXTENSION pg_trgm as a superuser, then "
                "CREATE INDEX ix_trace_search_body ON trace_search USING gin (body gin_trgm_ops)",
                str(exc).splitlines()[0],
            )
        texts = "metadata::text, request_body::text, response_body::text"
        body = f"lower(concat_ws(chr(10), error, {texts}))"
    if conn.dialect.name == "sqlite":
        # An entry's rowid is its trace's: a lookup per trace is a seek.
        conn.execute(text(f"INSERT INTO trace_search (rowid, record_id, body) SELECT rowid, id, {body} FROM traces"))
    else:
        conn.execute(text(f"INSERT INTO trace_search (record_id, body) SELECT id, {body} FROM traces"))


@migrations("0006a_trace_cache_savings")
def cache_savings(conn: Connection) -> None:
    """What a response-cache hit saved: ``saved_tokens`` and ``saved_micros`` (the original answer's
    tokens and cost) on each trace, and their sums in the rollups, so spend reports show savings.

    Named to run before ``0007_trace_rollup_levels``, whose rollup fill reads and writes these columns;
    a store that ran 0007 already gets it now (pending migrations run whatever their place)."""
    for table in ("traces", "trace_rollups"):
        conn.execute(text(f"ALTER TABLE {table} ADD COLUMN saved_tokens BIGINT NOT NULL DEFAULT 0"))
        conn.execute(text(f"ALTER TABLE {table} ADD COLUMN saved_micros BIGINT NOT NULL DEFAULT 0"))


@migrations("0007_trace_rollup_levels")
def rollup_levels(conn: Connection) -> None:
    """Rollups at two levels: every dimension (``level`` 0, the rows so far) and the route's alone
    (``level`` 1: route, target, model, status class), a few rows per bucket for route-level charts.
    Filled from the traces already stored: both levels for a store upgraded from before the rollups,
    the route level where the store writer has kept the full one."""
    conn.execute(text("ALTER TABLE trace_rollups ADD COLUMN level INTEGER NOT NULL DEFAULT 0"))
    conn.execute(text("CREATE INDEX ix_trace_rollups_level_grain_bucket ON trace_rollups (level, grain, bucket)"))
    if conn.execute(text("SELECT 1 FROM traces LIMIT 1")).first() is not None:
        from lmdeck.tracing.rollups import FULL, ROUTE, define_sketch_merge, fill

        define_sketch_merge(conn)  # what fill's upserts merge sketches with (0009 keeps it on PostgreSQL)
        kept = conn.execute(text("SELECT 1 FROM trace_rollups LIMIT 1")).first() is not None
        fill(conn, levels=(ROUTE,) if kept else (FULL, ROUTE))


@migrations("0008_trace_breakdowns")
def create_breakdowns(conn: Connection) -> None:
    """``trace_breakdowns``: hourly and daily requests, errors, tokens and cost per team x user and per
    team x tag, for spend by user and by tag without a scan (see tracing/breakdowns.py); filled from the
    traces already stored."""
    meta = MetaData()
    breakdowns = Table(
        "trace_breakdowns",
        meta,
        Column("id", String(32), primary_key=True),
        Column("grain", Integer, nullable=False),
        Column("bucket", BigInteger, nullable=False),
        Column("dimension", String(8), nullable=False),
        Column("value", String(256)),
        Column("team_id", String(64)),
        *(
            Column(name, BigInteger, nullable=False, default=0)
            for name in ("requests", "errors", "input_tokens", "output_tokens", "cost_micros")
        ),
    )
    Index(
        "ix_trace_breakdowns_dimension_grain_bucket",
        breakdowns.c.dimension,
        breakdowns.c.grain,
        breakdowns.c.bucket,
    )
    meta.create_all(conn)
    if conn.execute(text("SELECT 1 FROM traces LIMIT 1")).first() is not None:
        from lmdeck.tracing.breakdowns import fill

        fill(conn)


@migrations("0009_trace_sketch_merge")
def sketch_merge(conn: Connection) -> None:
    """``lmdeck_sketch_merge(stored, added)`` on PostgreSQL: merges two latency sketches in SQL, so the store
    writer adds a batch to the rollups with one upsert per row (SQLite registers it on each connection)."""
    if conn.dialect.name == "postgresql":
        from lmdeck.tracing.rollups import define_sketch_merge

        define_sketch_merge(conn)


@migrations("0012_trace_hold")
def trace_hold(conn: Connection) -> None:
    """``legal_hold`` on each trace: a held trace is neither deleted nor has its bodies cleared by
    retention (see tracing/expiry.py) until it is released."""
    conn.execute(text("ALTER TABLE traces ADD COLUMN legal_hold BOOLEAN NOT NULL DEFAULT FALSE"))
    conn.execute(text("CREATE INDEX ix_traces_legal_hold ON traces (legal_hold) WHERE legal_hold"))


@migrations("0105_retention_policies")
def retention_policies(conn: Connection) -> None:
    """``retention_policies``: per team and per route retention of bodies and traces, stored through the
    API or ``lmdeck apply`` (see tracing/retention_policies.py); and ``trace_retention_marks``, where
    retention notes the newest cut-off it deleted traces before, so a rollup rebuild recomputes only
    the days whose traces are all still stored."""
    conn.execute(
        text(
            "CREATE TABLE retention_policies (name VARCHAR(128) PRIMARY KEY, team_id VARCHAR(64), "
            "route VARCHAR(256), body_days INTEGER, trace_days INTEGER, created_at DOUBLE PRECISION NOT NULL, "
            "updated_at DOUBLE PRECISION NOT NULL, updated_by VARCHAR(200))"
        )
    )
    conn.execute(text("CREATE TABLE trace_retention_marks (name VARCHAR(64) PRIMARY KEY, value DOUBLE PRECISION)"))


@migrations("0011_trace_sessions")
def add_sessions(conn: Connection) -> None:
    """``session_id``: the session (conversation) a request belongs to, for ``/api/sessions``.

    Indexed by session then time (one session's traces in order) and by team, session and time
    (a team's sessions, grouped without reading another team's rows). Earlier rows have none.
    """
    conn.execute(text("ALTER TABLE traces ADD COLUMN session_id VARCHAR(128)"))
    for name, columns in (
        ("session_time", "session_id, created_at"),
        ("team_session", "team_id, session_id, created_at"),
    ):
        conn.execute(text(f"CREATE INDEX ix_traces_{name} ON traces ({columns}) WHERE session_id IS NOT NULL"))


@migrations("0011b_trace_spans")
def create_spans(conn: Connection) -> None:
    """``trace_spans``: spans applications send over OTLP (``POST /v1/traces``), one row per team, trace and
    span, shown with lmdeck's own calls as one tree. Indexed by trace (a tree's spans) and by the time they
    arrived (retention); the caller's trace id on ``traces`` is indexed too, to find lmdeck's calls in a tree."""
    meta = MetaData()
    spans = Table(
        "trace_spans",
        meta,
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
    Index("ix_trace_spans_trace", spans.c.trace_id, spans.c.team_id)
    Index("ix_trace_spans_received_at", spans.c.received_at)
    meta.create_all(conn)
    conn.execute(
        text("CREATE INDEX ix_traces_client_trace_id ON traces (client_trace_id) WHERE client_trace_id IS NOT NULL")
    )

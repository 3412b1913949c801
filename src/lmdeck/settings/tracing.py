"""Tracing: the trace spool, analytics queries, retention and what OpenTelemetry export carries."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from lmdeck.protocol.retention import RetentionPolicySpec


class TraceRetentionSettings(BaseModel):
    """How long trace data is kept, in days (null: forever); see lmdeck.tracing.retention."""

    model_config = ConfigDict(extra="forbid")

    raw_days: int | None = Field(default=30, ge=1, description="raw traces, with their bodies, tags and search entries")
    minute_days: int | None = Field(default=30, ge=1, description="per-minute rollups")
    rollup_days: int | None = Field(default=396, ge=1, description="hourly and daily rollups (13 months)")
    prune_interval_s: float | None = Field(
        default=3600.0, gt=0, description="seconds between two runs of the serving process's retention job; null: never"
    )
    body_days: int | None = Field(
        default=None, ge=1, description="request/response bodies of every trace (the trace row is kept); null: raw_days"
    )
    batch_size: int = Field(default=5000, ge=1, le=100_000, description="rows deleted or cleared per transaction")
    policies: list[RetentionPolicySpec] = Field(
        default_factory=list,
        description="per team and per route retention of bodies and traces (lmdeck.protocol.retention); "
        "those stored through the API or `lmdeck apply` replace these by name",
    )

    @field_validator("policies")
    @classmethod
    def _unique_policies(cls, value: list[RetentionPolicySpec]) -> list[RetentionPolicySpec]:
        names = [p.name for p in value]
        twice = sorted({n for n in names if names.count(n) > 1})
        if twice:
            raise ValueError(f"retention policies declared twice: {', '.join(twice)}")
        scopes = [(p.team, p.route) for p in value]
        for team, route in sorted({s for s in scopes if scopes.count(s) > 1}, key=str):
            same = ", ".join(p.name for p in value if (p.team, p.route) == (team, route))
            raise ValueError(f"retention policies {same} cover the same team {team or '*'} and route {route or '*'}")
        return value


class TracingSettings(BaseModel):
    model_config = ConfigDict(extra="forbid")

    redact: Literal["none", "bodies", "all"] = "none"
    fsync_interval_ms: float = Field(
        default=0.0,
        ge=0,
        description="least time between two fsyncs of the spool; 0 writes as soon as the previous fsync "
        "ends, so records that arrive during one fsync share the next (group commit without a wait)",
    )
    batch_size: int = Field(default=500, ge=1)
    writer_process: bool = Field(
        default=True,
        description="decode and insert spooled traces in a separate process (`lmdeck-writer`), so the store's "
        "work never holds the serving process's interpreter lock; false keeps it in a thread (always, for an "
        "in-memory database)",
    )
    segment_bytes: int = Field(default=8 * 1024 * 1024, ge=1024)
    analytics_workers: int = Field(
        default=2, ge=1, description="analytics queries (spend, summaries, listings, search) at once"
    )
    analytics_processes: bool = Field(
        default=True,
        description="run analytics queries in separate, lower-priority processes (threads for an in-memory store)",
    )
    analytics_timeout_s: float = Field(default=10.0, gt=0, description="an analytics query past this answers 503")
    retention: TraceRetentionSettings = Field(default_factory=TraceRetentionSettings)
    analytics_queue: int = Field(
        default=32, ge=0, description="analytics queries waiting beyond the workers; more answer 503"
    )
    otlp_max_body_bytes: int = Field(
        default=4 * 1024 * 1024,
        ge=1024,
        description="largest OTLP trace export (POST /v1/traces) accepted, in bytes, after any gzip decoding; "
        "larger ones answer 413",
    )
    capture_content: bool = Field(
        default=False,
        description="put the messages on exported spans (`gen_ai.input.messages`, `gen_ai.output.messages`, "
        "`gen_ai.system_instructions`); only while `redact` is `none`",
    )
    unspanned_paths: list[str] = Field(
        default_factory=lambda: ["/health/live", "/health/ready", "/metrics"],
        description="request paths that get no OpenTelemetry span (probes and scrapes, which would drown the "
        "traces); exact paths",
    )
    refused_spans_per_second: float = Field(
        default=10.0,
        ge=0,
        description="SERVER spans exported per second (bursts up to as many) for requests refused before routing "
        "(400, 401, 403, 413, 429); the rest are not exported",
    )
    refused_records_per_minute: int = Field(
        default=20,
        ge=0,
        description="trace records written per client address and minute for /v1/ requests refused before a key "
        "was read (401, 413); the rest are only counted in lmdeck_requests_refused_total",
    )
    otlp_queue_spans: int = Field(
        default=20_000,
        ge=1,
        description="spans received over OTLP and not yet stored; an export past it answers 503 (the exporter retries)",
    )

"""The OpenAI-compatible endpoints that keep state: stored responses (``POST /v1/responses``),
files and batches (``/v1/files``, ``/v1/batches``)."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field


class ResponsesSettings(BaseModel):
    """Stored responses of ``POST /v1/responses`` (``store: true``)."""

    model_config = ConfigDict(extra="forbid")

    retention_days: float = Field(
        default=30.0, gt=0, description="days a stored response is kept; expired ones are purged"
    )
    purge_interval_s: float = Field(default=3600.0, gt=0, description="seconds between purges of expired responses")
    max_pending: int = Field(
        default=10_000, ge=1, description="stored responses queued for the database at most; past it one is not stored"
    )


class BatchSettings(BaseModel):
    """Files (``/v1/files``) and batches (``/v1/batches``) run by the gateway (docs/batches.md)."""

    model_config = ConfigDict(extra="forbid")

    max_file_bytes: int = Field(
        default=100 * 1024 * 1024, ge=1024, description="largest file `POST /v1/files` accepts; larger ones get a 413"
    )
    max_rows: int = Field(default=50_000, ge=1, description="request lines one batch input file may hold")
    concurrency: int = Field(default=8, ge=1, le=256, description="rows of one batch in flight at once")
    claim_ttl_s: float = Field(
        default=30.0, gt=0, description="seconds a dead process's claim on a batch lasts before another adopts it"
    )

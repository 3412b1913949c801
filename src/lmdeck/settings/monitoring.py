"""Alerting (:mod:`lmdeck.monitoring`): rules, channels, silences and how notifications are sent."""

from __future__ import annotations

from pydantic import Field

from lmdeck.protocol.alerts import AlertsDeclared


class AlertSettings(AlertsDeclared):
    """Alerting (see docs/monitoring.md): rules, channels and silences declared in the file are synced to
    the store when the gateway starts (and by ``lmdeck apply``); the evaluator runs every
    ``evaluation_interval_s`` seconds (None: only when ``POST /api/alerts/evaluate`` asks)."""

    evaluation_interval_s: float | None = Field(default=60.0, gt=0, description="seconds between evaluations")
    max_attempts: int = Field(default=6, ge=1, le=100, description="sends of a notification before it is dead-lettered")
    backoff_base_s: float = Field(default=2.0, gt=0, description="seconds before the first retry; doubles each time")
    backoff_max_s: float = Field(default=300.0, gt=0, description="longest wait between two sends")

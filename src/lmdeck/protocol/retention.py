"""Wire schemas of trace retention: per team and per route policies, and legal holds.

A policy keeps the bodies (request and response) of the traces it covers ``body_days``
days and the traces themselves ``trace_days`` days (null: as ``tracing.retention`` says)::

    name: team-a-support
    team: team-a              # the traces of one team (omit: every team's)
    route: support            # on one route (omit: every route)
    body_days: 7              # bodies cleared after 7 days, the trace row kept
    trace_days: 90            # the whole trace deleted after 90 days

The most specific policy covering a trace decides: team and route, then team, then
route, then the global ``tracing.retention`` (``body_days``, ``raw_days``).
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field, model_validator

_NAME = r"^[A-Za-z0-9][\w.\-]{0,127}$"
#: About 270 years: a day count past it is a mistake, not a policy.
MAX_DAYS = 100_000


class RetentionPolicySpec(BaseModel):
    """How long the bodies and the traces of one team and/or route are kept, in days."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(pattern=_NAME, description="the policy's name (letters, digits, . _ -)")
    team: str | None = Field(default=None, min_length=1, max_length=64, description="team id; null: every team")
    route: str | None = Field(default=None, min_length=1, max_length=256, description="route; null: every route")
    body_days: int | None = Field(
        default=None, ge=1, le=MAX_DAYS, description="days request/response bodies are kept; null: the global setting"
    )
    trace_days: int | None = Field(
        default=None, ge=1, le=MAX_DAYS, description="days whole traces are kept; null: the global raw_days"
    )

    @model_validator(mode="after")
    def _scoped(self) -> RetentionPolicySpec:
        if self.team is None and self.route is None:
            raise ValueError(
                f"retention policy {self.name!r} names neither `team` nor `route`: the global retention is "
                "tracing.retention (body_days, raw_days)"
            )
        if self.body_days is None and self.trace_days is None:
            raise ValueError(f"retention policy {self.name!r} sets neither `body_days` nor `trace_days`")
        if self.body_days is not None and self.trace_days is not None and self.body_days > self.trace_days:
            raise ValueError(
                f"retention policy {self.name!r}: body_days ({self.body_days}) is longer than trace_days "
                f"({self.trace_days}); a body goes with its trace"
            )
        return self


class HoldRequest(BaseModel):
    """``POST /api/traces/{id}/hold``: why the trace is kept past every retention policy."""

    model_config = ConfigDict(extra="forbid")

    reason: str | None = Field(default=None, max_length=1000, description="kept in the audit log")

"""The web console at ``/console/`` (:mod:`lmdeck.console`)."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field


class ConsoleSettings(BaseModel):
    """The web console at ``/console/`` (see docs/console.md)."""

    model_config = ConfigDict(extra="forbid")

    session_ttl_s: float = Field(
        default=8 * 3600.0, gt=0, le=30 * 86400, description="seconds a console sign-in lasts before it must be renewed"
    )

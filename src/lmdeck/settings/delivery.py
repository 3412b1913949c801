"""Progressive delivery (:mod:`lmdeck.delivery`): the release controller's pace."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field


class ReleaseControllerSettings(BaseModel):
    """The release controller (progressive delivery, see docs/delivery.md): how often it analyses releases."""

    model_config = ConfigDict(extra="forbid")

    analysis_tick_s: float | None = Field(
        default=5.0,
        gt=0,
        description="seconds between the release controller's analyses (null: only on POST /api/releases/analyze)",
    )
    poll_interval: float = Field(default=2.0, gt=0, description="seconds between reloads of the serving releases")

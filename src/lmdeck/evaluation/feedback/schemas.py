"""``POST /api/feedback``: what an application reports about one answer."""

from __future__ import annotations

import math
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator


class FeedbackRequest(BaseModel):
    """Feedback on a trace: a value (thumbs up = 1, down = 0, or a score), a label, a comment.

    ``trace_id`` may be the trace's id, the ``x-request-id`` lmdeck answered with, or lmdeck's W3C trace id.
    """

    model_config = ConfigDict(extra="forbid")

    trace_id: str = Field(min_length=1, max_length=128)
    name: str = Field(default="user_feedback", min_length=1, max_length=128, pattern=r"^[\w.\-:]+$")
    value: float | None = None
    label: str | None = Field(default=None, max_length=128)
    comment: str | None = Field(default=None, max_length=4000)
    source: Literal["user", "api", "judge"] = "api"

    @field_validator("value", mode="before")
    @classmethod
    def _thumbs(cls, value: object) -> object:
        if isinstance(value, bool):
            return 1.0 if value else 0.0
        if isinstance(value, str) and value.lower() in ("up", "down"):
            return 1.0 if value.lower() == "up" else 0.0
        return value

    @field_validator("value")
    @classmethod
    def _finite(cls, value: float | None) -> float | None:
        if value is not None and not math.isfinite(value):
            raise ValueError("value must be a finite number")
        return value

    @model_validator(mode="after")
    def _something(self) -> FeedbackRequest:
        if self.value is None and self.label is None and not self.comment:
            raise ValueError("send a `value` (e.g. 1 for thumbs up, 0 for down), a `label` or a `comment`")
        return self

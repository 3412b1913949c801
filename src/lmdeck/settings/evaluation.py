"""Online evaluation, experiments, annotation queues and feedback (:mod:`lmdeck.evaluation`)."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field


class EvaluationSettings(BaseModel):
    """Online rules and experiments declared in the config file (validated by lmdeck.evaluation at start)."""

    model_config = ConfigDict(extra="forbid")

    online_rules: list[dict[str, Any]] = Field(default_factory=list, description="online evaluation rules")
    experiments: list[dict[str, Any]] = Field(default_factory=list, description="A/B experiments started when absent")
    annotation_queues: list[dict[str, Any]] = Field(
        default_factory=list, description="annotation queues created when absent (docs/monitoring.md)"
    )
    feedback_names: list[str] = Field(
        default_factory=lambda: ["thumbs", "rating", "score", "correct"],
        description="feedback names the lmdeck_feedback_value metric labels by name; any other is counted as `other`",
    )
    feedback_correction_max_bytes: int = Field(
        default=8192,
        ge=1,
        le=1_048_576,
        description="largest feedback `correction` (UTF-8 bytes; compact JSON when not text); past it a 400",
    )
    queue_size: int = Field(default=1000, ge=1, description="traces waiting for online scoring before drops")
    workers: int = Field(default=2, ge=1, le=64, description="background online scoring tasks")
    poll_interval: float = Field(default=2.0, gt=0, description="seconds between reloads of rules and experiments")
    ray_gateway_url: str | None = Field(
        default=None,
        description="this gateway's URL as a Ray cluster reaches it (`http://gateway:8080`); set, a run may ask "
        "for `runner: ray` (submitted to `fine_tuning.ray_address`, see docs/evaluation.md)",
    )

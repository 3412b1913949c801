"""The model and prompt registry (:mod:`lmdeck.registry`): polling, protected labels, prompt rendering."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field


class RegistrySettings(BaseModel):
    model_config = ConfigDict(extra="forbid")

    poll_interval: float = Field(default=2.0, gt=0, description="seconds between checks for changes by others")
    protected_labels: dict[str, Literal["admin", "developer"]] = Field(
        default={"production": "admin"},
        description="aliases/labels whose moves need a stronger role than developer",
    )
    render_workers: int = Field(
        default=2, ge=1, le=64, description="worker processes rendering prompt templates that have logic"
    )
    render_cpu_seconds: float = Field(
        default=1.0, gt=0, le=60, description="CPU seconds one prompt render may use before it is stopped (400)"
    )
    render_memory_mb: int = Field(
        default=256, ge=32, description="memory (MiB) a rendering worker may use beyond what it needs to start"
    )

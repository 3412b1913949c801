"""The in-process inference engine (:mod:`lmdeck.local`)."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field


class LocalSettings(BaseModel):
    model_config = ConfigDict(extra="forbid")

    enabled: bool = True
    device: str = "auto"
    quantize: Literal["none", "int8"] = "none"
    max_batch_size: int = Field(default=32, ge=1)
    max_queue: int = Field(default=256, ge=1)
    model_dir: str | None = None
    threads: int = Field(default=0, ge=0, description="CPU threads for local models (0: PyTorch's default)")
    max_adapters: int = Field(
        default=8, ge=1, description="LoRA adapters kept loaded per local model; the least recently used goes first"
    )

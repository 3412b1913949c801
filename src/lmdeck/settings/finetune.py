"""Where fine-tuning jobs train (:mod:`lmdeck.finetune`)."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field


class FineTuningSettings(BaseModel):
    """Where fine-tuning jobs train: the job runner (``local`` subprocess or a ``ray`` cluster) and its options."""

    model_config = ConfigDict(extra="forbid")

    runner: str = Field(default="local", description="job runner: `local` (a subprocess) or `ray` (Ray Jobs)")
    ray_address: str | None = Field(
        default=None,
        description="Ray Jobs address of the `ray` runner (`http://head:8265`); unset: Ray's own discovery "
        "(RAY_ADDRESS, then a cluster started on this machine)",
    )
    ray_python: str = Field(
        default="python", description="the Python the `ray` runner's entrypoint runs on the cluster (lmdeck installed)"
    )
    ray_num_cpus: float = Field(default=1.0, ge=0, le=1024, description="CPUs a Ray training job reserves")
    ray_num_gpus: float = Field(default=0.0, ge=0, le=64, description="GPUs a Ray training job reserves")
    max_concurrent_jobs: int = Field(
        default=1,
        ge=1,
        le=64,
        description="training workers at once per gateway process; a job past it waits in `queued` and starts "
        "when one ends",
    )
    claim_ttl_s: float = Field(
        default=30.0, gt=0, description="seconds a dead process's claim on a job lasts before another adopts it"
    )

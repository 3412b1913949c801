"""The register stage: the adapter that passed the gate becomes a model version with its lineage.

The version is served by the local provider: the base model with the adapter
(``{provider: local, model: demo, base_model: demo, adapter: DIR}``); its metrics are the gate's
headline numbers, its lineage the dataset version, the job and the version it follows, and its
tags the hyperparameters and the data card's counts::

    version = await register_adapter(models, record, job_dir / "adapter", principal)
    f"{version.name}@{version.version}"      # the job's fine_tuned_model
"""

from __future__ import annotations

import math
from pathlib import Path

from lmdeck.finetune.jobs.store import JobRecord
from lmdeck.pipeline.principal import Principal
from lmdeck.protocol.registry import LineageSpec, ModelVersionSpec
from lmdeck.registry.model_registry import ModelRegistry
from lmdeck.registry.versions import Version


def adapter_spec(record: JobRecord, adapter: Path, parent: int | None) -> ModelVersionSpec:
    """The model version a job's adapter is registered as (``parent``: the model's newest version, if any)."""
    job = record.job
    metrics = {k: float(v) for k, v in (job.gate.metrics if job.gate else {}).items() if not math.isnan(v)}
    tags = {
        "fine_tuning_job": job.id,
        "base_model": job.model,
        "runner": job.runner,
        "hyperparameters": record.request.hyperparameters.model_dump_json(exclude_defaults=True),
    }
    if job.validation_dataset:
        tags["validation_dataset"] = job.validation_dataset
    if job.regression_dataset:
        tags["regression_dataset"] = job.regression_dataset
    if job.data_card is not None:
        card = job.data_card
        tags["data_card"] = (
            f"rows_in={card.rows_in} train={card.train} validation={card.validation} scrubbed={card.scrubbed}"
        )
    return ModelVersionSpec(
        provider="local",
        model=job.model,
        base_model=job.model,
        adapter=str(adapter),
        metrics=metrics,
        tags=tags,
        lineage=LineageSpec(dataset=job.training_dataset, training_job=job.id, parent_version=parent),
        description=f"LoRA adapter of {job.model} trained on {job.training_dataset} by {job.id}",
    )


async def register_adapter(
    models: ModelRegistry, record: JobRecord, adapter: Path, principal: Principal
) -> Version[ModelVersionSpec]:
    """Register the job's adapter under ``record.job.register_as`` as ``principal`` (the job's creator)."""
    name = record.job.register_as
    parent = models.live.snapshot.latest.get(("model", name))
    return await models.create_version(name, adapter_spec(record, adapter, parent), principal)

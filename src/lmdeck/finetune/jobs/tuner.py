"""The fine-tuning jobs service as a flywheel run sees it (:class:`lmdeck.finetune.flywheel.tuner.FineTuner`).

flywheel = FlywheelService(db, datasets, models, audit, JobsTuner(finetune.service))
"""

from __future__ import annotations

from typing import Any

from lmdeck.finetune.flywheel.tuner import JobOutcome
from lmdeck.finetune.jobs.service import FineTuningService
from lmdeck.pipeline.principal import Principal
from lmdeck.protocol import APIError
from lmdeck.protocol.fine_tuning import FineTuningJob, FineTuningJobCreate


def outcome_of(job: FineTuningJob) -> JobOutcome:
    """A job's status, a one-line progress and, once registered, the model version."""
    p = job.progress
    progress = f"{job.status}/{p.stage}"
    if p.total_steps:
        loss = f" loss {p.loss:.4f}" if p.loss is not None else ""
        progress += f": step {p.step}/{p.total_steps}{loss}"
    name = version = None
    if job.fine_tuned_model:
        name, _, number = job.fine_tuned_model.rpartition("@")
        version = int(number)
    details: dict[str, Any] = {}
    if job.gate is not None:
        details["gate"] = job.gate.model_dump(mode="json")
    return JobOutcome(
        status=job.status,
        progress=progress,
        model_name=name,
        model_version=version,
        error=job.error.message if job.error else None,
        details=details,
    )


class JobsTuner:
    """Submits and follows jobs of a :class:`FineTuningService` as the run's principal."""

    name = "fine_tuning_jobs"
    available = True
    unavailable_reason = ""

    def __init__(self, service: FineTuningService) -> None:
        self.service = service

    async def submit(
        self,
        *,
        dataset: str,
        dataset_version: int,
        base: str,
        register_as: str,
        hyperparameters: dict[str, Any],
        extra: dict[str, Any],
        principal: Principal,
    ) -> str:
        request = FineTuningJobCreate.model_validate(
            {
                **extra,
                "model": base,
                "training_dataset": f"{dataset}@{dataset_version}",
                "register_as": register_as,
                "hyperparameters": hyperparameters,
            }
        )
        return (await self.service.create(request, principal)).id

    async def poll(self, job_id: str, principal: Principal) -> JobOutcome:
        return outcome_of(await self.service.get(job_id, principal))

    async def resumable(self, job_id: str, principal: Principal) -> bool:
        """True for a job the principal sees; a failed or cancelled one is resumed first."""
        try:
            job = await self.service.get(job_id, principal)
        except APIError:
            return False
        if job.status in ("failed", "cancelled"):
            await self.service.resume(job_id, principal)
        return True

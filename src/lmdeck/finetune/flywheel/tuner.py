"""What a flywheel run asks of fine-tuning: submit a job on a dataset version, follow it to its end.

:class:`FineTuner` is that narrow interface; the fine-tuning jobs service (``lmdeck.finetune.jobs``)
is adapted to it where the gateway is assembled, and a server without it runs every step but the
training one (:class:`UnavailableTuner` says why, and a resume picks the run up once it exists).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol

from lmdeck.pipeline.principal import Principal

#: Job statuses after which nothing more happens.
FINISHED = frozenset({"succeeded", "failed", "cancelled", "gated"})


@dataclass(frozen=True)
class JobOutcome:
    """A job's state as a run sees it: status, a one-line progress, and once registered the model version."""

    status: str
    progress: str | None = None
    model_name: str | None = None
    model_version: int | None = None
    error: str | None = None
    details: dict[str, Any] = field(default_factory=dict)

    @property
    def finished(self) -> bool:
        return self.status in FINISHED


class FineTuner(Protocol):
    name: str
    available: bool
    unavailable_reason: str

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
        """Create a fine-tuning job; its id."""
        ...

    async def poll(self, job_id: str, principal: Principal) -> JobOutcome: ...

    async def resumable(self, job_id: str, principal: Principal) -> bool:
        """Whether job ``job_id`` (submitted by an earlier try of the step) can be followed or resumed
        instead of submitting a new one."""
        ...


class UnavailableTuner:
    """No fine-tuning jobs on this server: the ``fine_tune`` step fails naming why."""

    name = "unavailable"
    available = False
    unavailable_reason = (
        "fine-tuning jobs are not available on this server (lmdeck.finetune.jobs is not installed): "
        "the run stops before training; resume it once they are"
    )

    async def submit(self, **_: Any) -> str:
        raise RuntimeError(self.unavailable_reason)

    async def poll(self, job_id: str, principal: Principal) -> JobOutcome:
        raise RuntimeError(self.unavailable_reason)

    async def resumable(self, job_id: str, principal: Principal) -> bool:
        return False

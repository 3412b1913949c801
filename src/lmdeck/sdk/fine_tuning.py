"""``client.fine_tuning``: fine-tuning jobs (``/v1/fine_tuning/jobs``).

job = client.fine_tuning.create(model="demo", training_dataset="count-fixes@3", register_as="counter")
job = client.fine_tuning.wait(job["id"], on_progress=lambda job: print(job["progress"]["step"]))
job["status"], job["fine_tuned_model"]          # "succeeded", "counter@4" (or "gated" and job["gate"])
client.fine_tuning.events(job["id"], limit=100)  # newest first; type "metrics": the loss curve
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any
from urllib.parse import quote

from lmdeck.sdk.errors import LMDeckError
from lmdeck.sdk.namespace import Namespace

JOBS = "/v1/fine_tuning/jobs"
#: Statuses a job does not leave by itself.
FINAL = frozenset({"succeeded", "failed", "cancelled", "gated"})
Rows = list[dict[str, Any]]


def _q(value: str) -> str:
    return quote(value, safe="")


class FineTuning(Namespace):
    """The fine-tuning API."""

    name = "fine_tuning"

    def create(self, *, model: str, training_dataset: str, **fields: Any) -> dict[str, Any]:
        """Create a job; ``fields`` are the request's other fields (``regression_dataset``,
        ``hyperparameters``, ``prep``, ``runner``, ``suffix``, ``register_as``, ``gate``, ``evaluators``,
        ``seed``, ``metadata``). Returns the job at once (status ``validating_files``)."""
        body = {
            "model": model,
            "training_dataset": training_dataset,
            **{k: v for k, v in fields.items() if v is not None},
        }
        job: dict[str, Any] = self.client.post(JOBS, json=body)
        return job

    def list(self, *, limit: int = 20, after: str | None = None) -> dict[str, Any]:
        page: dict[str, Any] = self.client.get(JOBS, params={"limit": limit, "after": after})
        return page

    def get(self, job_id: str) -> dict[str, Any]:
        job: dict[str, Any] = self.client.get(f"{JOBS}/{_q(job_id)}")
        return job

    def cancel(self, job_id: str) -> dict[str, Any]:
        job: dict[str, Any] = self.client.post(f"{JOBS}/{_q(job_id)}/cancel")
        return job

    def resume(self, job_id: str) -> dict[str, Any]:
        job: dict[str, Any] = self.client.post(f"{JOBS}/{_q(job_id)}/resume")
        return job

    def events(self, job_id: str, *, limit: int = 20, after: str | None = None) -> Rows:
        """The job's events, newest first."""
        data: Rows = self.client.get(f"{JOBS}/{_q(job_id)}/events", params={"limit": limit, "after": after})["data"]
        return data

    def checkpoints(self, job_id: str, *, limit: int = 10) -> Rows:
        data: Rows = self.client.get(f"{JOBS}/{_q(job_id)}/checkpoints", params={"limit": limit})["data"]
        return data

    def wait(
        self,
        job_id: str,
        *,
        on_progress: Callable[[dict[str, Any]], None] | None = None,
        poll: float = 1.0,
        timeout: float | None = None,
    ) -> dict[str, Any]:
        """Poll until the job is final; ``on_progress(job)`` after each poll. Raises
        :class:`~lmdeck.sdk.errors.LMDeckError` when ``timeout`` seconds pass first."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            job = self.get(job_id)
            if on_progress is not None:
                on_progress(job)
            if job["status"] in FINAL:
                return job
            if deadline is not None and time.monotonic() > deadline:
                raise LMDeckError(f"fine-tuning job {job_id} is still {job['status']} after {timeout} s")
            time.sleep(poll)


NAMESPACE = FineTuning

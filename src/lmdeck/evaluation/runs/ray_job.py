"""The ``ray`` run executor: an eval run's rows as a Ray job (Ray Jobs API, ``JobSubmissionClient``).

The gateway writes the job file (rows, evaluator specs, a token issued for the run) into
``<jobs_dir>/<run id>/``, submits ``python -m lmdeck.evaluation.runs.ray_worker JOB_DIR``, and while
the job runs reads the results the worker appends to ``results.jsonl`` there, so the run's progress
shows as rows finish. The run ends with the job: ``SUCCEEDED`` with every row back, else failed with
Ray's message. A cancelled run (the gateway stopping) stops the job::

    executor = RayRunExecutor(base_url="http://gw:8080/v1", jobs_dir=Path("/shared/lmdeck/eval-jobs"),
                              address="http://head:8265")
    await executor.execute(job, on_results)

**The jobs directory must be on a filesystem the cluster sees at the same path** (as for fine-tuning's
Ray runner), the cluster needs lmdeck with the ``ray`` extra installed for ``python``, and
``base_url`` must reach this gateway process (the run's token is known to it alone).
"""

from __future__ import annotations

import asyncio
import os
import shlex
import shutil
from pathlib import Path
from typing import Any

import anyio

from lmdeck.evaluation.runs.remote import JOB_FILE, RESULTS_FILE, EvalJob, RemoteRunError, ResultSink
from lmdeck.protocol.evaluation import RowResult

WORKER_MODULE = "lmdeck.evaluation.runs.ray_worker"
_RUNNING = {"PENDING", "RUNNING"}


class ResultsTail:
    """Reads the lines a worker appends to ``results.jsonl``, each once (a partial last line waits)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._offset = 0

    def read(self) -> list[RowResult]:
        """The results appended since the last call (blocking file I/O: call it in a thread)."""
        try:
            with self.path.open("rb") as f:
                f.seek(self._offset)
                data = f.read()
        except FileNotFoundError:
            return []
        end = data.rfind(b"\n") + 1
        self._offset += end
        return [RowResult.model_validate_json(line) for line in data[:end].splitlines() if line.strip()]


class RayRunExecutor:
    """Runs eval jobs on a Ray cluster (see the module docstring); ``poll_interval`` in seconds."""

    name = "ray"

    def __init__(
        self,
        *,
        base_url: str,
        jobs_dir: Path,
        address: str | None = None,
        python: str = "python",
        num_cpus: float = 1.0,
        poll_interval: float = 0.5,
    ) -> None:
        self.base_url = base_url
        self.jobs_dir = jobs_dir
        self.address = address
        self.python = python
        self.num_cpus = num_cpus
        self.poll_interval = poll_interval
        self._client: Any = None

    def refusal(self, model: str | None) -> str | None:
        if model is not None:
            return "`model` (a registry model version override) is served in-process only: run it with runner 'local'"
        return None

    def _jobs(self) -> Any:
        if self._client is None:
            from ray.job_submission import JobSubmissionClient

            self._client = JobSubmissionClient(self.address)
        return self._client

    def entrypoint(self, job_dir: Path) -> str:
        """The shell command the cluster runs for ``job_dir``."""
        return f"{shlex.quote(self.python)} -m {WORKER_MODULE} {shlex.quote(str(job_dir))}"

    def _submit(self, job: EvalJob, job_dir: Path) -> str:
        job_dir.mkdir(parents=True, exist_ok=True)
        path = job_dir / JOB_FILE
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(job.model_dump_json())
        submission: str = self._jobs().submit_job(
            entrypoint=self.entrypoint(job_dir),
            entrypoint_num_cpus=self.num_cpus,
            metadata={"lmdeck_eval_run": job.run_id},
        )
        return submission

    def _status(self, submission: str) -> str:
        status = self._jobs().get_job_status(submission)
        return str(getattr(status, "value", status))

    def _why(self, submission: str, status: str) -> str:
        try:
            message = self._jobs().get_job_info(submission).message or ""
            logs = str(self._jobs().get_job_logs(submission))[-800:]
        except Exception as exc:  # the cluster went away meanwhile
            message, logs = f"{type(exc).__name__}: {exc}", ""
        return f"the Ray job {submission} ended {status}: {message} {logs}".strip()[:2000]

    async def execute(self, job: EvalJob, on_results: ResultSink) -> None:
        job_dir = self.jobs_dir / job.run_id
        tail = ResultsTail(job_dir / RESULTS_FILE)
        submission: str | None = None
        status = "PENDING"
        got = 0
        try:
            submission = await anyio.to_thread.run_sync(self._submit, job, job_dir)
            while status in _RUNNING:
                await asyncio.sleep(self.poll_interval)
                status = await anyio.to_thread.run_sync(self._status, submission)
                batch = await anyio.to_thread.run_sync(tail.read)
                if batch:
                    got += len(batch)
                    await on_results(batch)
            if status != "SUCCEEDED":
                raise RemoteRunError(await anyio.to_thread.run_sync(self._why, submission, status))
            if got < len(job.rows):
                raise RemoteRunError(f"the Ray job {submission} succeeded with {got} of {len(job.rows)} results")
        finally:
            if submission is not None and status in _RUNNING:
                with anyio.CancelScope(shield=True):
                    await anyio.to_thread.run_sync(self._stop, submission)
            with anyio.CancelScope(shield=True):
                await anyio.to_thread.run_sync(shutil.rmtree, job_dir, True)

    def _stop(self, submission: str) -> None:
        try:
            self._jobs().stop_job(submission)
        except Exception:  # already gone, or the cluster is unreachable: nothing left to stop from here
            pass

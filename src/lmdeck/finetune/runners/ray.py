"""The ``ray`` job runner: the training worker as a Ray job (Ray Jobs API, ``JobSubmissionClient``).

The entrypoint is the same worker command the local runner runs, on the cluster, with its output
appended to the job's ``worker.log``::

    runner = RayRunner(FineTuningSettings(runner="ray", ray_address="http://head:8265"))
    handle = runner.start(Path("/shared/lmdeck/finetune/jobs/ftjob-1"))     # 'raysubmit_...'

**The job directory must be on a filesystem the cluster sees at the same path** (a shared mount such as
NFS): the worker reads ``job.json`` and the data files there and writes progress, checkpoints and the
adapter back there, which is all lmdeck reads. The cluster needs lmdeck (with its training
dependencies) installed for ``settings.ray_python``, and the base model directory at the path
``job.json`` names. Ray stops a job by SIGTERM and, after ``RAY_JOB_STOP_SIGNAL_TIMEOUT_S`` (set on the
cluster), SIGKILL: give it longer than a training step for the worker to write ``cancelled``; a job
killed earlier resumes from its last checkpoint when started again.
"""

from __future__ import annotations

import importlib.util
import shlex
from pathlib import Path
from typing import Any

from lmdeck.finetune.runners.base import WORKER_MODULE, RunnerState
from lmdeck.finetune.runners.registry import RunnerRegistry
from lmdeck.finetune.training.spec import JobDir
from lmdeck.settings import FineTuningSettings

_RUNNING = {"PENDING", "RUNNING"}


class RayRunner:
    """Submits training workers as Ray jobs; the handle is the Ray submission id (see the module docstring).

    ``state``: ``running`` while the job is pending or running, ``exited`` once it stopped, succeeded or
    failed, ``lost`` when the cluster does not know the submission or cannot be reached.
    """

    name = "ray"

    def __init__(self, settings: FineTuningSettings | None = None) -> None:
        self.settings = settings or FineTuningSettings(runner="ray")
        self._client: Any = None

    def _jobs(self) -> Any:
        if self._client is None:
            from ray.job_submission import JobSubmissionClient

            self._client = JobSubmissionClient(self.settings.ray_address)
        return self._client

    def entrypoint(self, job_dir: Path) -> str:
        """The shell command the cluster runs for ``job_dir``."""
        job = JobDir(job_dir)
        python = shlex.quote(self.settings.ray_python)
        return f"{python} -m {WORKER_MODULE} {shlex.quote(str(job_dir))} >> {shlex.quote(str(job.log_file))} 2>&1"

    def start(self, job_dir: Path) -> str:
        job = JobDir(job_dir)
        if not job.spec_file.is_file():
            raise FileNotFoundError(f"{job.spec_file} does not exist: write the job's TrainingSpec first")
        submission: str = self._jobs().submit_job(
            entrypoint=self.entrypoint(job_dir),
            entrypoint_num_cpus=self.settings.ray_num_cpus,
            entrypoint_num_gpus=self.settings.ray_num_gpus,
            metadata={"lmdeck_job_dir": str(job_dir), "lmdeck_job_id": job_dir.name},
        )
        return submission

    def state(self, handle: str) -> RunnerState:
        try:
            status = self._jobs().get_job_status(handle)
        except Exception:  # unknown submission (RuntimeError) or unreachable cluster (ConnectionError...)
            return "lost"
        return "running" if str(getattr(status, "value", status)) in _RUNNING else "exited"

    def cancel(self, handle: str) -> None:
        if self.state(handle) == "running":
            self._jobs().stop_job(handle)


def register(registry: RunnerRegistry) -> None:
    if importlib.util.find_spec("ray") is None:
        raise ImportError("No module named 'ray'")
    registry.add("ray", RayRunner)

"""The job runner protocol: how a training job's worker is started, watched and cancelled.

A runner starts ``python -m lmdeck.finetune.training.worker JOB_DIR`` somewhere (a local subprocess, a
Ray job...) and answers a handle; everything else (progress, checkpoints, the adapter) travels through
the job directory (:class:`lmdeck.finetune.training.JobDir`). Runners are found by name in a
:class:`~lmdeck.finetune.runners.registry.RunnerRegistry`::

    runner = load_runners().create("local", settings.fine_tuning)
    handle = runner.start(job_dir)        # started again on a directory with checkpoints: resumes
    runner.state(handle)                  # "running", "exited" or "lost"
    runner.cancel(handle)                 # the worker writes `cancelled` at its next step boundary
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Literal, Protocol, runtime_checkable

from lmdeck.settings import FineTuningSettings

#: ``running``: started and not finished; ``exited``: finished (how is in the job's progress events);
#: ``lost``: the runner cannot find it (a pid or submission it does not know, a cluster it cannot reach).
RunnerState = Literal["running", "exited", "lost"]

#: The module every runner runs, with the job directory as its one argument.
WORKER_MODULE = "lmdeck.finetune.training.worker"


@runtime_checkable
class JobRunner(Protocol):
    """Starts training workers on job directories; see the module docstring."""

    name: str

    def start(self, job_dir: Path) -> str:
        """Start the worker on ``job_dir`` (which holds ``job.json``); a handle for ``state``/``cancel``."""
        ...

    def state(self, handle: str) -> RunnerState:
        """Where the worker behind ``handle`` stands."""
        ...

    def cancel(self, handle: str) -> None:
        """Ask the worker to stop (SIGTERM: it writes ``cancelled`` at the next step); no error if it is gone."""
        ...


#: Builds a runner from the fine-tuning settings (what a ``lmdeck.job_runners`` hook registers).
RunnerFactory = Callable[[FineTuningSettings], JobRunner]

"""Job runners: where a training worker runs (``local`` subprocess, ``ray`` cluster), behind one protocol."""

from lmdeck.finetune.runners.base import WORKER_MODULE, JobRunner, RunnerFactory, RunnerState
from lmdeck.finetune.runners.registry import ENTRY_POINT_GROUP, RunnerRegistry, load_runners

__all__ = [
    "ENTRY_POINT_GROUP",
    "WORKER_MODULE",
    "JobRunner",
    "RunnerFactory",
    "RunnerRegistry",
    "RunnerState",
    "load_runners",
]

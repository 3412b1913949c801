"""LoRA training of a local base model: the job directory (``JobDir``, ``TrainingSpec``) and the worker
(``python -m lmdeck.finetune.training.worker JOB_DIR``) that trains in it, resumably.

Importing this package does not import torch; :mod:`lmdeck.finetune.training.lora` does.
"""

from lmdeck.finetune.training.spec import Device, JobDir, TrainingSpec, checkpoint_step

__all__ = ["Device", "JobDir", "TrainingSpec", "checkpoint_step"]

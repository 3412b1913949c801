"""The flywheel: production traces (with the corrections people gave) → a dataset version → a fine-tuning
job (prepare, train, gate, register) → a release, each step recorded, audited and resumable."""

from lmdeck.finetune.flywheel.service import FlywheelService
from lmdeck.finetune.flywheel.store import FlywheelRun, FlywheelStore
from lmdeck.finetune.flywheel.tuner import FineTuner, JobOutcome, UnavailableTuner

__all__ = ["FineTuner", "FlywheelRun", "FlywheelService", "FlywheelStore", "JobOutcome", "UnavailableTuner"]

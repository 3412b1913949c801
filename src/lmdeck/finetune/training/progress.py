"""Trainer → ``progress.jsonl``: a ``transformers`` callback that writes ProgressEvents and stops on request.

``step`` events carry the mean training loss since the last one, the learning rate, trained tokens per
second since this worker started (or resumed) and the seconds left at that pace; ``evaluation`` events
the validation loss; ``checkpoint`` events the checkpoint directory. Setting ``stop`` (a
``threading.Event``, set by the worker's SIGTERM handler) ends training at the next step boundary::

    callback = ProgressCallback(job, stop=threading.Event())
    trainer = Trainer(..., callbacks=[callback])
"""

from __future__ import annotations

import threading
import time
from typing import Any

from transformers import TrainerCallback, TrainerControl, TrainerState, TrainingArguments

from lmdeck.finetune.training.spec import JobDir
from lmdeck.protocol.training import ProgressEvent


class ProgressCallback(TrainerCallback):  # type: ignore[misc]
    """Writes the job's progress events from the Trainer's hooks; see the module docstring."""

    def __init__(self, job: JobDir, stop: threading.Event) -> None:
        self.job = job
        self.stop = stop
        self.stopped_at: int | None = None
        self.started = time.monotonic()
        self.first_step = 0
        self.first_tokens = 0

    def _rate(self, state: TrainerState) -> tuple[float | None, float | None]:
        """(trained tokens per second, seconds left) since this worker started training."""
        elapsed = time.monotonic() - self.started
        steps = state.global_step - self.first_step
        if elapsed <= 0 or steps <= 0:
            return None, None
        tokens = int(state.num_input_tokens_seen) - self.first_tokens
        left = max(0, state.max_steps - state.global_step) * elapsed / steps
        return round(tokens / elapsed, 1), round(left, 1)

    def on_train_begin(
        self, args: TrainingArguments, state: TrainerState, control: TrainerControl, **kwargs: Any
    ) -> None:
        # Called after a resumed Trainer has loaded its state: global_step is the checkpoint's step.
        self.started = time.monotonic()
        self.first_step = state.global_step
        self.first_tokens = int(state.num_input_tokens_seen)
        message = f"resumed from checkpoint-{state.global_step}" if state.global_step else "started"
        self.job.append_event(
            ProgressEvent(
                kind="started", at=time.time(), step=state.global_step, total_steps=state.max_steps, message=message
            )
        )

    def on_step_end(self, args: TrainingArguments, state: TrainerState, control: TrainerControl, **kwargs: Any) -> None:
        if self.stop.is_set():
            self.stopped_at = state.global_step
            control.should_training_stop = True
            control.should_save = False
            control.should_evaluate = False

    def on_log(
        self,
        args: TrainingArguments,
        state: TrainerState,
        control: TrainerControl,
        logs: dict[str, float] | None = None,
        **kwargs: Any,
    ) -> None:
        logs = logs or {}
        common: dict[str, Any] = {"at": time.time(), "step": state.global_step, "total_steps": state.max_steps}
        common["epoch"] = round(state.epoch, 4) if state.epoch is not None else None
        if "loss" in logs:
            rate, eta = self._rate(state)
            self.job.append_event(
                ProgressEvent(
                    kind="step",
                    loss=float(logs["loss"]),
                    learning_rate=float(logs["learning_rate"]) if "learning_rate" in logs else None,
                    tokens_per_s=rate,
                    trained_tokens=int(state.num_input_tokens_seen),
                    eta_s=eta,
                    **common,
                )
            )
        if "eval_loss" in logs:
            self.job.append_event(ProgressEvent(kind="evaluation", eval_loss=float(logs["eval_loss"]), **common))

    def on_save(self, args: TrainingArguments, state: TrainerState, control: TrainerControl, **kwargs: Any) -> None:
        path = self.job.checkpoints_dir / f"checkpoint-{state.global_step}"
        self.job.append_event(
            ProgressEvent(
                kind="checkpoint", at=time.time(), step=state.global_step, total_steps=state.max_steps, path=str(path)
            )
        )

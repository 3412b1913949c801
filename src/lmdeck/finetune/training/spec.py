"""What a training job is (``TrainingSpec``, its ``job.json``) and the directory it runs in (``JobDir``).

A job directory is the whole interface between whoever starts a training job and the worker that runs
it: the starter writes ``job.json`` (and usually the data files), the worker appends progress events,
checkpoints and finally the adapter::

    <job_dir>/
      job.json                      TrainingSpec
      train.jsonl, validation.jsonl {"prompt": ..., "completion": ...} per line (paths are in job.json)
      progress.jsonl                ProgressEvent per line, appended and flushed by the worker
      checkpoints/checkpoint-<step>/ resumable training state (adapter, optimizer, scheduler, RNG)
      adapter/                      the final PEFT adapter (adapter_config.json, adapter_model.safetensors)
      worker.log                    the worker's stdout and stderr (written by the job runner)

    job = JobDir.create(Path("/data/finetune/jobs/ftjob-1"), spec)
    events, offset = job.read_events()          # later: job.read_events(offset) for the new ones only
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from lmdeck.protocol.limits import MAX_COUNT
from lmdeck.protocol.training import LoraHyperparameters, ProgressEvent

Device = Literal["cpu", "cuda", "auto"]

_CHECKPOINT = re.compile(r"^checkpoint-(\d+)$")


class TrainingSpec(BaseModel):
    """One LoRA training job, as the worker reads it from ``job.json``.

    ``base_model_dir`` holds a ``transformers`` causal LM (``config.json``, weights, ``tokenizer.json``);
    nothing is downloaded. ``train_file``/``validation_file`` are JSON-lines files of
    ``{"prompt": str, "completion": str, ...}`` (the prompt already rendered through the base model's chat
    template, the completion ending with its end token); a relative path is relative to the job directory.
    ``device`` ``auto`` picks CUDA when there is one; ``threads`` caps PyTorch's CPU threads (None: its
    default); ``max_length`` truncates an example (prompt + completion) to that many tokens.
    """

    model_config = ConfigDict(extra="forbid")

    job_id: str = Field(min_length=1, max_length=200)
    base_model: str = Field(min_length=1, max_length=200)
    base_model_dir: str = Field(min_length=1)
    train_file: str = "train.jsonl"
    validation_file: str | None = "validation.jsonl"
    hyperparameters: LoraHyperparameters = Field(default_factory=LoraHyperparameters)
    device: Device = "auto"
    threads: int | None = Field(default=None, ge=1, le=1024)
    max_length: int = Field(default=512, ge=8, le=MAX_COUNT)


@dataclass(frozen=True)
class JobDir:
    """The files of one training job under ``root`` (see the module docstring for the layout)."""

    root: Path

    @classmethod
    def create(cls, root: Path, spec: TrainingSpec) -> JobDir:
        """Make ``root`` (parents included) and write ``spec`` to its ``job.json``."""
        job = cls(root)
        root.mkdir(parents=True, exist_ok=True)
        job.write_spec(spec)
        return job

    @property
    def spec_file(self) -> Path:
        return self.root / "job.json"

    @property
    def progress_file(self) -> Path:
        return self.root / "progress.jsonl"

    @property
    def checkpoints_dir(self) -> Path:
        return self.root / "checkpoints"

    @property
    def adapter_dir(self) -> Path:
        return self.root / "adapter"

    @property
    def log_file(self) -> Path:
        return self.root / "worker.log"

    def write_spec(self, spec: TrainingSpec) -> None:
        tmp = self.spec_file.with_suffix(".json.tmp")
        tmp.write_text(spec.model_dump_json(indent=2) + "\n")
        os.replace(tmp, self.spec_file)

    def read_spec(self) -> TrainingSpec:
        """The job's spec; ``FileNotFoundError`` when ``job.json`` is missing, pydantic's error when invalid."""
        return TrainingSpec.model_validate_json(self.spec_file.read_text())

    def data_path(self, name: str) -> Path:
        """A data file named in the spec: absolute as given, relative to the job directory otherwise."""
        path = Path(name)
        return path if path.is_absolute() else self.root / path

    def append_event(self, event: ProgressEvent) -> None:
        """Append one event to ``progress.jsonl`` and flush it to disk (a reader sees whole lines only)."""
        line = event.model_dump_json(exclude_none=True) + "\n"
        with self.progress_file.open("a", encoding="utf-8") as out:
            out.write(line)
            out.flush()
            os.fsync(out.fileno())

    def read_events(self, offset: int = 0) -> tuple[list[ProgressEvent], int]:
        """Events from byte ``offset`` on, and the offset to read the next ones from.

        A last line still being written (no newline yet) is left for the next call.
        """
        try:
            with self.progress_file.open("rb") as source:
                source.seek(offset)
                data = source.read()
        except FileNotFoundError:
            return [], offset
        end = data.rfind(b"\n") + 1
        events = [ProgressEvent.model_validate_json(line) for line in data[:end].splitlines() if line.strip()]
        return events, offset + end

    def checkpoints(self) -> list[Path]:
        """Complete checkpoints (those with a ``trainer_state.json``), oldest step first."""
        if not self.checkpoints_dir.is_dir():
            return []
        found: list[tuple[int, Path]] = []
        for path in self.checkpoints_dir.iterdir():
            match = _CHECKPOINT.match(path.name)
            if match and (path / "trainer_state.json").is_file():
                found.append((int(match.group(1)), path))
        return [path for _, path in sorted(found)]

    def latest_checkpoint(self) -> Path | None:
        """The newest complete checkpoint, which a restarted worker resumes from; None when there is none."""
        found = self.checkpoints()
        return found[-1] if found else None


def checkpoint_step(path: Path) -> int:
    """The step a ``checkpoint-<step>`` directory was saved at; ``ValueError`` for any other name."""
    match = _CHECKPOINT.match(path.name)
    if not match:
        raise ValueError(f"{path} is not a checkpoint-<step> directory")
    return int(match.group(1))
